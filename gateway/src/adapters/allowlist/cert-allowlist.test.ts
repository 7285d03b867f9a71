import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeygateError } from '@keygate/shared/errors';
import { AllowlistPolicy, CertAllowlistAuthenticator } from './cert-allowlist.js';

describe('certificate allow-list', () => {
  it('grants listed roles on listed instances only', async () => {
    const auth = new CertAllowlistAuthenticator([
      { identity: 'spiffe://keygate/cluster/a', instances: ['inst-a'], roles: ['wrap', 'unwrap'] },
      { identity: 'spiffe://keygate/cluster/a', instances: ['inst-a'], roles: ['rewrap'] },
      { identity: 'ops', instances: ['*'], roles: ['keys:admin'] },
    ]);
    const policy = new AllowlistPolicy();
    const a = await auth.authenticate({ cert: { identity: 'spiffe://keygate/cluster/a', thumbprint: 't' } });
    policy.authorize(a, 'inst-a', 'rewrap');
    const denied = (fn: () => void) =>
      assert.throws(fn, (e: unknown) => isKeygateError(e) && e.code === 'FORBIDDEN_ERR');
    denied(() => policy.authorize(a, 'inst-b', 'wrap'));
    denied(() => policy.authorize(a, 'inst-a', 'keys:admin'));
    const stranger = await auth.authenticate({ cert: { identity: 'nobody', thumbprint: 't' } });
    denied(() => policy.authorize(stranger, 'inst-a', 'wrap'));
    const ops = await auth.authenticate({ cert: { identity: 'ops', thumbprint: 't' } });
    policy.authorize(ops, 'any', 'keys:admin');
  });
});
