import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

/** Where and as whom a test talks to the gateway's Key Protect API. */
export interface KpIdentity {
  readonly url: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly apiKeyFile: string;
  readonly instance: string;
}

/** A status and the parsed body (undefined when empty). */
export interface KpAnswer {
  readonly status: number;
  readonly body: Record<string, unknown> | undefined;
}

/** A Key Protect session as a client would hold one: its certificate, then a token for its API key. */
export interface KpSession {
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<KpAnswer>;
  close(): void;
}

/** Opens a session: gets a token over mTLS with the identity's certificate and API key. */
export async function kpSession(id: KpIdentity): Promise<KpSession> {
  const agent = new Agent({
    keepAlive: true,
    ca: readFileSync(id.caFile),
    cert: readFileSync(id.certFile),
    key: readFileSync(id.keyFile),
  });
  const send = (method: string, path: string, body: string | undefined, headers: Record<string, string>) =>
    new Promise<KpAnswer>((resolve, reject) => {
      const req = request(`${id.url}${path}`, { method, agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined,
          }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  const token = await send(
    'POST',
    '/identity/token',
    new URLSearchParams({
      grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
      apikey: readFileSync(id.apiKeyFile, 'utf8').trim(),
    }).toString(),
    { 'content-type': 'application/x-www-form-urlencoded' },
  );
  if (token.status !== 200) {
    agent.destroy();
    throw new Error(`token: ${token.status} ${JSON.stringify(token.body)}`);
  }
  const auth = {
    authorization: `Bearer ${String(token.body?.access_token)}`,
    'bluemix-instance': id.instance,
  };
  return {
    call: (method, path, body, headers = {}) =>
      send(method, path, body === undefined ? undefined : JSON.stringify(body), {
        ...auth,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      }),
    close: () => agent.destroy(),
  };
}
