import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INSTANCE_ID_PATTERN } from '@keygate/shared/api';
import { isKeygateError } from '@keygate/shared/errors';
import fc from 'fast-check';
import { type AccessPolicy, type Principal, ROLES, type Role } from '../../core/auth/principal.js';
import { RolePolicy } from '../../core/auth/role-policy.js';
import { AllowlistPolicy, CertAllowlistAuthenticator } from './cert-allowlist.js';

/** Names that exist on every plain object through its prototype. */
const PROTOTYPE_NAMES = [
  'toString',
  'constructor',
  'hasOwnProperty',
  'valueOf',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__proto__',
  '__defineGetter__',
];
const instances = fc.oneof(
  fc.constantFrom(...PROTOTYPE_NAMES),
  fc.stringMatching(INSTANCE_ID_PATTERN),
  fc.string({ maxLength: 12 }),
);
const roles = fc.constantFrom(...ROLES);
const roleLists = fc.uniqueArray(roles, { minLength: 1, maxLength: ROLES.length });
/** A roles map as the three sources build one: config (null prototype), JSON (token claims), literal. */
const roleMaps = fc
  .tuple(fc.array(fc.tuple(fc.oneof(instances, fc.constant('*')), roleLists), { maxLength: 6 }), fc.nat(2))
  .map(([entries, kind]) => {
    if (kind === 1) return JSON.parse(JSON.stringify(Object.fromEntries(entries))) as Record<string, Role[]>;
    const out: Record<string, Role[]> = kind === 0 ? Object.create(null) : {};
    for (const [k, v] of entries)
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  });

const principal = (r: Readonly<Record<string, readonly Role[]>>): Principal => ({
  cert: { identity: 'c', thumbprint: 't' },
  subject: 's',
  roles: r,
});

/** Runs authorize: true when allowed, false on FORBIDDEN_ERR; anything else fails the property. */
function allowed(policy: AccessPolicy, p: Principal, instance: string, role: Role): boolean {
  try {
    policy.authorize(p, instance, role);
    return true;
  } catch (err) {
    assert.ok(isKeygateError(err) && err.code === 'FORBIDDEN_ERR', `threw ${String(err)}`);
    return false;
  }
}

const own = (r: Readonly<Record<string, readonly Role[]>>, k: string): readonly Role[] =>
  Object.hasOwn(r, k) ? (r[k] ?? []) : [];

describe('access policies with any instance name (fuzzed)', () => {
  it('token mode (RolePolicy): allowed exactly when the instance itself grants the role, else 403', () => {
    const policy = new RolePolicy();
    fc.assert(
      fc.property(roleMaps, instances, roles, (map, instance, role) => {
        const held = own(map, instance);
        // The implied roles (role-policy.ts): keys:admin reads keys, identities:admin sees the fleet.
        const expected =
          held.includes(role) ||
          (role === 'keys:read' && held.includes('keys:admin')) ||
          (role === 'fleet:read' && held.includes('identities:admin'));
        assert.equal(allowed(policy, principal(map), instance, role), expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('allow-list mode (AllowlistPolicy): the instance, else `*`, grants the role, else 403', () => {
    const policy = new AllowlistPolicy();
    fc.assert(
      fc.property(roleMaps, instances, roles, (map, instance, role) => {
        const held = Object.hasOwn(map, instance) ? own(map, instance) : own(map, '*');
        assert.equal(allowed(policy, principal(map), instance, role), held.includes(role));
      }),
      { numRuns: 2000 },
    );
  });

  it('allow-list entries naming prototype slots are plain instances: authenticate, then allow or 403', async () => {
    const entries = fc.array(
      fc.record({
        identity: fc.constantFrom('a', 'b'),
        instances: fc.array(fc.oneof(instances, fc.constant('*')), { minLength: 1, maxLength: 4 }),
        roles: roleLists,
      }),
      { maxLength: 5 },
    );
    await fc.assert(
      fc.asyncProperty(
        entries,
        fc.constantFrom('a', 'b', 'stranger'),
        instances,
        roles,
        async (list, who, instance, role) => {
          const auth = new CertAllowlistAuthenticator(list);
          const p = await auth.authenticate({ cert: { identity: who, thumbprint: 't' } });
          const mine = list.filter((e) => e.identity === who);
          const grants = (inst: string) =>
            mine.some((e) => e.instances.includes(inst) && e.roles.includes(role));
          const named = mine.some((e) => e.instances.includes(instance));
          const expected = named ? grants(instance) : grants('*');
          assert.equal(allowed(new AllowlistPolicy(), p, instance, role), expected);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
