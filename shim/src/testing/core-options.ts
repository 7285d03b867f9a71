import { ShimAlg, systemClock, systemRandom } from '@keygate/shared';
import type { KmsCoreOptions } from '../core/kms-core.js';
import type { GatewayClient } from '../core/ports.js';

/**
 * KmsCore options for tests: A256CBC-HS512, NEW_DEK=false, the shipped DEK limits (2^21 uses,
 * 7 days), a cache of 100 for an hour, the system clock and CSPRNG; `over` replaces any of them.
 */
export function testCoreOptions(gateway: GatewayClient, over: Partial<KmsCoreOptions> = {}): KmsCoreOptions {
  return {
    instanceId: 'inst',
    crkId: 'crk',
    alg: ShimAlg.A256CBC_HS512,
    dekBytes: 32,
    newDekPerEncrypt: false,
    dekLimits: { maxUses: 2 ** 21, maxAgeMs: 7 * 86_400_000 },
    cacheSize: 100,
    cacheTtlMs: 3_600_000,
    gateway,
    clock: systemClock,
    random: systemRandom,
    ...over,
  };
}
