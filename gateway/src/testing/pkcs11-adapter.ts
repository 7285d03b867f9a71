import { Secret } from '@keygate/shared/config';
import { systemRandom } from '@keygate/shared/crypto';
import { createLogger } from '@keygate/shared/log';
import type { DestinationStream } from 'pino';
import { Pkcs11Hsm, type Pkcs11HsmOptions } from '../adapters/pkcs11/pkcs11-hsm.js';
import { SOFTHSM_MODULE } from './softhsm.js';

/**
 * The Pkcs11Hsm adapter on a SoftHSM2 token, for tests: SoftHSM2's module, 2 sessions, the libuv
 * pool, the system CSPRNG, and debug lines into `log` (silent without). `more` sets anything else.
 */
export function softHsmAdapter(
  tokenLabel: string,
  pin: string,
  log?: DestinationStream,
  more: Partial<Pkcs11HsmOptions> = {},
): Pkcs11Hsm {
  return new Pkcs11Hsm({
    modulePath: SOFTHSM_MODULE,
    tokenLabel,
    pin: new Secret(pin, 'test'),
    sessions: 2,
    workerThreads: 0,
    random: systemRandom,
    logger:
      log === undefined
        ? createLogger({ level: 'silent' })
        : createLogger({ level: 'debug', destination: log }),
    ...more,
  });
}
