import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { BUNDLE_FILES, buildBundle, SHIM_DIR } from './bundle.js';

const SECRET_KEY = `kg_${'A'.repeat(43)}`;
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n';

function bundle(over: Partial<Parameters<typeof buildBundle>[0]> = {}) {
  const files = buildBundle({
    cluster: 'prod-eu-1',
    instance: '0123',
    crk: '0456',
    gatewayUrls: ['https://gw-a.example:8443', 'https://gw-b.example:8443'],
    caPem: '-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----',
    certPem: '-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n',
    keyPem: KEY_PEM,
    apiKey: SECRET_KEY,
    certNotAfter: new Date('2027-12-06T00:00:00Z'),
    createdAt: '2026-12-06T00:00:00.000Z',
    ...over,
  });
  const by = new Map(files.map((f) => [f.name, f]));
  const text = (name: string) => by.get(name)?.text ?? assert.fail(`no ${name}`);
  return { files, by, text };
}

describe('cluster bundle', () => {
  it('kmsplugin-config.yaml: ICP keys and keygate keys, ids kept as strings, paths under /etc/keygate/shim', () => {
    const { text } = bundle();
    const doc = parse(text(BUNDLE_FILES.shimConfig));
    // Ids that YAML would read as numbers stay strings ("0123", not 123).
    assert.equal(doc.KP_CONFIG.INSTANCE_ID, '0123');
    assert.equal(doc.KP_CONFIG.CRK_ID, '0456');
    assert.equal(doc.KP_CONFIG.URL, 'https://gw-a.example:8443');
    assert.equal(doc.SERVER_CONFIG.TOKEN_URL, 'https://gw-a.example:8443/identity/token');
    assert.deepEqual(doc.KEYGATE.GATEWAY_URLS, ['https://gw-b.example:8443']);
    assert.equal(doc.SERVER_CONFIG.UNIX_SOCKET_PATH, '/var/run/keygate/kms.sock');
    for (const [k, f] of [
      ['CLIENT_CERT_FILE', BUNDLE_FILES.clientCert],
      ['CLIENT_KEY_FILE', BUNDLE_FILES.clientKey],
      ['API_KEY_FILE', BUNDLE_FILES.apiKey],
    ] as const)
      assert.equal(doc.KEYGATE[k], `${SHIM_DIR}/${f}`);
    assert.equal(doc.KP_CONFIG.KP_CA_FILE, `${SHIM_DIR}/${BUNDLE_FILES.ca}`);
    assert.equal(doc.SERVER_CONFIG.API_KEY, undefined, 'the key is in its own file, not inline');
  });

  it('secrets only in the 0600 files; the rest is 0644', () => {
    const { files } = bundle();
    const secretFiles = new Set<string>([
      BUNDLE_FILES.apiKey,
      BUNDLE_FILES.clientKey,
      BUNDLE_FILES.shimConfig,
    ]);
    for (const f of files) {
      assert.equal(f.mode, secretFiles.has(f.name) ? 0o600 : 0o644, f.name);
      if (f.name !== BUNDLE_FILES.apiKey) assert.ok(!f.text.includes(SECRET_KEY), `${f.name} has no API key`);
      if (f.name !== BUNDLE_FILES.clientKey)
        assert.ok(!f.text.includes('PRIVATE KEY'), `${f.name} has no key`);
    }
  });

  it('EncryptionConfiguration and static pod agree on the socket and mount the shim folder', () => {
    const { text } = bundle({ image: 'registry.local/keygate-shim:1.2.3' });
    const enc = parse(text(BUNDLE_FILES.encryptionConfig));
    assert.equal(enc.kind, 'EncryptionConfiguration');
    const kms = enc.resources[0].providers[0].kms;
    assert.deepEqual(
      [kms.apiVersion, kms.name, kms.endpoint],
      ['v2', 'keygate', 'unix:///var/run/keygate/kms.sock'],
    );
    const pod = parse(text(BUNDLE_FILES.manifest));
    const c = pod.spec.containers[0];
    assert.equal(c.image, 'registry.local/keygate-shim:1.2.3');
    assert.deepEqual(c.args, ['serve', '--config', `${SHIM_DIR}/${BUNDLE_FILES.shimConfig}`]);
    assert.equal(pod.spec.hostNetwork, true);
    const paths = pod.spec.volumes.map((v: { hostPath?: { path: string } }) => v.hostPath?.path);
    assert.ok(paths.includes('/var/run/keygate') && paths.includes(SHIM_DIR));
    assert.equal(
      c.readinessProbe.httpGet.port,
      parse(text(BUNDLE_FILES.shimConfig)).SERVER_CONFIG.HEALTHZ_PORT * 1,
    );
  });

  it('needs a gateway URL', () => {
    assert.throws(() => bundle({ gatewayUrls: [] }), RangeError);
  });
});
