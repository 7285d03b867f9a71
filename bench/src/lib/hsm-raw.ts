import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { PreparedStack } from './stack.js';

/**
 * The HSM ceiling: raw pkcs11js AES-256-GCM decrypts of a 32-byte DEK under the stack's root key,
 * as the gateway does them (C_DecryptInit, then C_DecryptAsync), one loop per session. Runs in
 * the bench process against the same SoftHSM2 token the gateway uses.
 */
export interface RawHsm {
  /** One decrypt on the next free session. */
  decrypt(): Promise<void>;
  close(): void;
}

export function openRawHsm(p: PreparedStack, sessions: number, modulePath: string): RawHsm {
  const conf = p.softhsmConf;
  if (conf) process.env.SOFTHSM2_CONF = conf;
  const lib = new pkcs11js.PKCS11();
  lib.load(modulePath);
  lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === 'keygate-dev');
  if (slot === undefined) throw new Error('token keygate-dev not found');
  const store = JSON.parse(readFileSync(join(p.home, 'keys.json'), 'utf8')) as {
    keys: { id: string; instance: string; versions: { id: string }[] }[];
  };
  const key = store.keys.find((k) => k.id === p.crkId);
  const version = key?.versions.at(-1)?.id;
  if (!key || !version) throw new Error('root key not in keys.json');
  const label = `keygate:${key.instance}:${key.id}:${version}`;
  const pin = readFileSync(join(p.home, 'secrets', 'hsm-pin'), 'utf8').trim();
  const open: Buffer[] = [];
  for (let i = 0; i < sessions; i++) {
    open.push(lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION));
  }
  const [first] = open;
  if (!first) throw new Error('no session');
  lib.C_Login(first, pkcs11js.CKU_USER, pin);
  lib.C_FindObjectsInit(first, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  const [handle] = lib.C_FindObjects(first, 1);
  lib.C_FindObjectsFinal(first);
  if (!handle) throw new Error(`key ${label} not found`);
  const iv = randomBytes(12);
  const aad = Buffer.from('bench');
  const params: pkcs11js.AesGCM = { type: pkcs11js.CK_PARAMS_AES_GCM, iv, aad, ivBits: 96, tagBits: 128 };
  const mech = (): pkcs11js.Mechanism => ({ mechanism: pkcs11js.CKM_AES_GCM, parameter: params });
  lib.C_EncryptInit(first, mech(), handle);
  const sealed = Buffer.from(lib.C_Encrypt(first, randomBytes(32), Buffer.alloc(48)));
  const idle = [...open];
  const waiters: Array<(s: Buffer) => void> = [];
  return {
    async decrypt() {
      const s = idle.pop() ?? (await new Promise<Buffer>((r) => waiters.push(r)));
      try {
        lib.C_DecryptInit(s, mech(), handle);
        await lib.C_DecryptAsync(s, sealed, Buffer.alloc(sealed.length));
      } finally {
        const w = waiters.shift();
        if (w) w(s);
        else idle.push(s);
      }
    },
    close() {
      try {
        lib.C_Logout(first);
      } catch {
        // already
      }
      for (const s of open) lib.C_CloseSession(s);
      lib.C_Finalize();
      lib.close();
    },
  };
}
