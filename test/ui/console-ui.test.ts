import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, launch, type Page } from 'puppeteer-core';
import { type DevStack, startDevStack } from '#devstack/devstack.js';
import { REPO_ROOT } from '#devstack/paths.js';

/**
 * The web console in a real browser (Debian's chromium, driven by puppeteer-core) against the dev
 * stack (gateway on SoftHSM2 or the software backend, a shim): log in, see the stack's key (and
 * its cluster and node once the gateway keeps fleet records), create, rotate, search the audit
 * log, destroy with typed confirmation; a wrong API key, a POST without the CSRF token and an
 * expired session are refused. Screenshots of each page go to test-output/ui/.
 */
const CHROMIUM = process.env.KEYGATE_CHROMIUM ?? '/usr/bin/chromium';
const OUT = join(REPO_ROOT, 'test-output', 'ui');
/** Short, so that the expired-session step does not wait long; every other step is quicker. */
const IDLE_SECONDS = 6;

describe('console in a browser', { skip: existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM}` }, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-ui-'));
  let stack: DevStack;
  let browser: Browser;
  let page: Page;
  let url: string;
  let adminKey: string;
  let ca: Buffer;
  const keyName = `ui-key-${process.pid}`;
  let keyId = '';

  const shot = async (name: string) => {
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
  };
  const text = async () => String(await page.evaluate('document.body.innerText'));
  /** Submits the form holding `selector` and waits for the page it leads to. */
  const submit = async (selector: string) => {
    await Promise.all([page.waitForNavigation(), page.click(selector)]);
  };

  before(async () => {
    mkdirSync(OUT, { recursive: true });
    stack = await startDevStack({
      home,
      gatewayPort: 0,
      healthzPort: 0,
      consolePort: 0,
      consoleIdleTimeout: `${IDLE_SECONDS}s`,
      keyIdRefreshSeconds: 1,
    });
    assert.ok(stack.info.consoleUrl, 'the stack reports its console URL');
    url = stack.info.consoleUrl;
    adminKey = readFileSync(stack.info.adminApiKeyFile, 'utf8').trim();
    ca = readFileSync(stack.info.caFile);
    // Trust exactly the gateway's server key (by its SPKI hash), not every certificate.
    const cert = new X509Certificate(readFileSync(stack.prepared.pki.serverCertFile));
    const spki = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64');
    browser = await launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-dev-shm-usage',
        `--ignore-certificate-errors-spki-list=${spki}`,
        '--disable-gpu',
      ],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1366, height: 768 });
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it('refuses a wrong API key', async () => {
    const res = await page.goto(`${url}/login`);
    assert.equal(res?.status(), 200);
    await shot('login');
    await page.type('#apikey', 'kg_not-a-key');
    await submit('form[action="/login"] button[type="submit"]');
    assert.match(await text(), /That API key is not valid \(AUTH_APIKEY_INVALID\)/);
    assert.equal((await page.cookies()).length, 0, 'no session cookie');
  });

  it('logs in with the admin API key, by keyboard alone, and shows the stack key', async () => {
    // The field has the focus (autofocus); Enter submits.
    assert.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'apikey');
    await page.keyboard.type(adminKey);
    await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    assert.equal(new URL(page.url()).pathname, '/keys');
    const body = await text();
    assert.match(body, /Signed in as ops-admin \(API key\)/);
    assert.match(body, /dev-root-key/);
    assert.ok(body.includes(stack.info.crkId));
    const [cookie] = await page.cookies();
    assert.equal(cookie?.name, '__Host-keygate-session');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.secure, true);
    assert.equal(cookie?.sameSite, 'Strict');
    await shot('keys');
  });

  it('creates a key and rotates it', async () => {
    await page.type('#new-name', keyName);
    await submit('form[action="/keys/create"] button[type="submit"]');
    const created = /Created key \S+ \(([0-9a-f-]{36})\)/.exec(await text());
    assert.ok(created, await text());
    keyId = created[1] ?? '';
    await submit(`form[action$="/${keyId}/rotate"] button`);
    assert.match(await text(), new RegExp(`Rotated ${keyName}: new version`));
    const versions = await page.$$eval(`form[action$="/${keyId}/rotate"]`, (forms) =>
      forms.map((f) => f.closest('tr')?.querySelectorAll('ul.versions li').length ?? 0),
    );
    assert.deepEqual(versions, [2]);
  });

  it("shows the clusters page with the dev stack's cluster and its shim's node", async () => {
    await page.goto(`${url}/clusters`);
    const body = await text();
    assert.match(body, /Clusters & nodes/);
    assert.match(body, /Cluster dev-cluster/);
    assert.match(body, /dev-master-1/);
    assert.ok(body.includes(stack.info.crkId), 'the node reports the stack key');
    assert.match(body, /\bok\b/);
    await shot('clusters');
  });

  it('shows the rotation page, which reloads itself', async () => {
    await page.goto(`${url}/rotation?k=${encodeURIComponent(`${stack.info.instanceId}/${keyId}`)}`);
    const refresh = await page.$eval('meta[http-equiv="refresh"]', (m) => m.getAttribute('content'));
    assert.equal(refresh, '5');
    assert.match(await text(), new RegExp(keyName));
    await shot('rotation');
  });

  it('follows a rotation of the stack key until every node of the cluster converges ', async () => {
    await page.goto(`${url}/keys`);
    await submit(`form[action$="/${stack.info.crkId}/rotate"] button`);
    assert.match(await text(), /Rotated dev-root-key: new version/);
    const rotation = `${url}/rotation?k=${encodeURIComponent(`${stack.info.instanceId}/${stack.info.crkId}`)}`;
    await page.goto(rotation);
    // The shim refreshes its key_id every second: the page (reloading itself) shows the cluster converge.
    const deadline = Date.now() + 30_000;
    let body = await text();
    while (!/Cluster dev-cluster converged/.test(body) && Date.now() < deadline) {
      await page.waitForNavigation({ timeout: 10_000 }).catch(() => page.goto(rotation));
      body = await text();
    }
    assert.match(body, /Cluster dev-cluster converged/);
    await shot('rotation-stack-key');
  });

  it('finds the rotation in the audit log, with the chain verified', async () => {
    await page.goto(`${url}/audit`);
    await page.select('#a-op', 'key.rotate');
    await page.type('#a-key', keyId);
    await submit('form[action="/audit"] button[type="submit"]');
    const body = await text();
    assert.match(body, /chain verified/);
    const rows = await page.$$eval('table tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    assert.equal(rows.length, 1, body);
    assert.match(rows[0] ?? '', /console:ops-admin/);
    assert.match(rows[0] ?? '', /key\.rotate/);
    assert.match(rows[0] ?? '', /success/);
    await shot('audit');
  });

  it('shows HSM and store status', async () => {
    await page.goto(`${url}/status`);
    const body = await text();
    assert.match(body, /HSM\s+ready/);
    assert.match(body, /Key store and database\s+ready/);
    await shot('status');
  });

  it('destroys a key only when its name is typed', async () => {
    await page.goto(`${url}/keys/${stack.info.instanceId}/${keyId}/destroy`);
    await shot('destroy');
    await page.type('#confirm', 'not-the-name');
    await submit('button.danger');
    assert.match(await text(), /key\.destroy refused: .*INVALID_FIELD_ERR/);
    await page.goto(`${url}/keys/${stack.info.instanceId}/${keyId}/destroy`);
    await page.type('#confirm', keyName);
    await submit('button.danger');
    assert.match(await text(), new RegExp(`Destroyed ${keyName}`));
  });

  it('refuses a POST without the CSRF token, even with the session cookie', async () => {
    const [cookie] = await page.cookies();
    assert.ok(cookie);
    const res = await post(
      `${url}/keys/create`,
      `${cookie.name}=${cookie.value}`,
      `instance=${stack.info.instanceId}&name=csrf-test`,
      ca,
    );
    assert.equal(res.status, 403);
    assert.equal(res.headers['x-keygate-error'], 'CONSOLE_CSRF_REFUSED');
    await page.goto(`${url}/keys`);
    assert.doesNotMatch(await text(), /csrf-test/);
  });

  it('logs in with a client certificate of the gateway CA; serves no Key Protect route, and the API no console', async () => {
    const admin = {
      cert: readFileSync(stack.info.adminCertFile),
      key: readFileSync(stack.info.adminKeyFile),
    };
    const login = await call(`${url}/login/certificate`, { method: 'POST', ca, ...admin });
    assert.equal(login.status, 303);
    const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
    assert.match(cookie, /^__Host-keygate-session=/);
    const status = await call(`${url}/status`, { ca, headers: { cookie } });
    assert.equal(status.status, 200);
    assert.match(status.body, /Signed in as <strong>ops-admin<\/strong> \(certificate\)/);
    const noCert = await call(`${url}/login/certificate`, { method: 'POST', ca });
    assert.equal(noCert.status, 401);
    assert.equal(noCert.headers['x-keygate-error'], 'AUTH_CERT_REQUIRED');
    assert.equal((await call(`${url}/api/v2/keys`, { ca, headers: { cookie } })).status, 404);
    const api = await call(`${stack.info.gatewayUrl}/login`, { ca, ...admin });
    assert.equal(api.status, 404);
    assert.doesNotMatch(api.body, /<html/);
  });

  it('refuses an expired session', async () => {
    await new Promise((r) => setTimeout(r, (IDLE_SECONDS + 1) * 1000));
    const res = await page.goto(`${url}/keys`);
    assert.equal(res?.status(), 401);
    assert.match(await text(), /session has ended.*CONSOLE_SESSION_EXPIRED/s);
    await shot('session-expired');
  });
});

/** A request from node (not the browser) over TLS trusting `ca`, optionally with a client certificate. */
function call(
  target: string,
  o: { method?: string; ca: Buffer; cert?: Buffer; key?: Buffer; headers?: Record<string, string> },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      { method: o.method ?? 'GET', ca: o.ca, cert: o.cert, key: o.key, headers: o.headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A form POST from node (not the browser), with the session cookie and no CSRF field. */
function post(
  target: string,
  cookie: string,
  body: string,
  ca: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        ca,
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
