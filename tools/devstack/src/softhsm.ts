import { findSoftHsmModule, initSoftHsmToken, writeSoftHsmConf } from '@keygate/gateway/testing/softhsm';

export { findSoftHsmModule, SOFTHSM_MODULE_CANDIDATES } from '@keygate/gateway/testing/softhsm';

export interface SoftHsmToken {
  /** Path of the softhsm2.conf to put in SOFTHSM2_CONF. */
  readonly conf: string;
  readonly module: string;
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
}

/**
 * Makes a private SoftHSM2 token store under `dir` (its own softhsm2.conf) and initialises a token
 * labelled `label`. SoftHSM2 moves a new token to a random slot: find it by label.
 */
export function createSoftHsmToken(
  dir: string,
  label = 'keygate',
  pin = '1234',
  soPin = '5678',
): SoftHsmToken {
  const module = findSoftHsmModule();
  if (!module) throw new Error('SoftHSM2 is not installed (apt-get install softhsm2)');
  const conf = writeSoftHsmConf(dir);
  initSoftHsmToken(conf, label, pin, soPin);
  return { conf, module, label, pin, soPin };
}
