/**
 * A PKCS#11 worker thread (`hsm.workerThreads`): runs batches of request-path calls
 * synchronously on sessions the main thread opened and logged in (handles and the login are
 * per process in PKCS#11, and the module was initialised with CKF_OS_LOCKING_OK). Find, init and
 * the crypto call of an operation all happen here, so the event loop never waits on the device
 * and an operation costs one message each way instead of a libuv hop per call.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { allocSecret } from '@keygate/shared/crypto';
import pkcs11js from 'pkcs11js';
import { gcm, IV_BYTES, TAG_BYTES } from './gcm-mechanism.js';
import { findKeyObject, KeyObjectMissing, KeyObjectRefused } from './key-object.js';
import type {
  WorkerBatch,
  WorkerOp,
  WorkerReply,
  WorkerResult,
  WorkerSetup,
  WorkerStop,
} from './worker-protocol.js';

type Handle = Buffer;

const port = parentPort;
if (port === null) throw new Error('pkcs11-worker runs only as a worker thread');
const setup = workerData as WorkerSetup;
const lib = new pkcs11js.PKCS11();
try {
  lib.load(setup.modulePath);
  try {
    lib.C_Initialize(
      setup.libraryParameters === undefined
        ? { flags: pkcs11js.CKF_OS_LOCKING_OK }
        : { flags: pkcs11js.CKF_OS_LOCKING_OK, libraryParameters: setup.libraryParameters },
    );
  } catch (err) {
    // The main thread initialised the module; this thread shares it.
    if (!(err instanceof Error) || err.message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
  }
} catch (err) {
  port.postMessage({ fatal: err instanceof Error ? err.message : 'load failed' });
  throw err;
}

const handles = new Map<string, Handle>();
let generation = -1;

port.on('message', (m: WorkerBatch | WorkerStop) => {
  if ('stop' in m) {
    port.close();
    return;
  }
  const batch = m;
  if (batch.generation !== generation) {
    handles.clear();
    generation = batch.generation;
  }
  const session = asBuffer(batch.session);
  const results: WorkerResult[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const op of batch.ops) {
    const r = run(session, op);
    results.push(r);
    if (r.ok) transfer.push(r.out.buffer as ArrayBuffer);
  }
  const reply: WorkerReply = { results };
  port.postMessage(reply, transfer);
});

function run(session: Handle, op: WorkerOp): WorkerResult {
  try {
    return op.kind === 'decrypt' ? decrypt(session, op) : encrypt(session, op);
  } catch (err) {
    if (err instanceof KeyObjectMissing)
      return { id: op.id, ok: false, ckr: undefined, method: '', missing: true };
    if (err instanceof KeyObjectRefused)
      return { id: op.id, ok: false, ckr: undefined, method: '', missing: false, refused: err.message };
    const e = err instanceof Error ? (err as Error & { method?: unknown }) : undefined;
    const ckr = e && /^CKR_[A-Z0-9_]+$/.test(e.message) ? e.message : undefined;
    return { id: op.id, ok: false, ckr, method: String(e?.method ?? ''), missing: false };
  }
}

function decrypt(session: Handle, op: WorkerOp): WorkerResult {
  const iv = asBuffer(op.iv ?? new Uint8Array(0));
  withKey(session, op.label, (key) => lib.C_DecryptInit(session, gcm(iv, op.aad), key));
  // Its own ArrayBuffer outside V8's heap (allocSecret), so it can be transferred out whole and
  // no copy of the plaintext is left behind when the garbage collector moves things.
  const out = allocSecret(op.data.length);
  const plain = lib.C_Decrypt(session, asBuffer(op.data), out);
  return { id: op.id, ok: true, out: plain };
}

function encrypt(session: Handle, op: WorkerOp): WorkerResult {
  const input = asBuffer(op.data);
  try {
    const appended = op.appendedIv ?? 0;
    // token-appended: a zeroed IV buffer of the token's length; the module fills in its own.
    const iv = op.iv
      ? asBuffer(op.iv)
      : appended > 0
        ? Buffer.alloc(appended)
        : lib.C_GenerateRandom(session, Buffer.alloc(IV_BYTES));
    withKey(session, op.label, (key) => lib.C_EncryptInit(session, gcm(iv, op.aad), key));
    const out = lib.C_Encrypt(session, input, Buffer.alloc(input.length + TAG_BYTES + appended));
    return appended > 0 ? { id: op.id, ok: true, out } : { id: op.id, ok: true, out, iv: new Uint8Array(iv) };
  } finally {
    input.fill(0);
  }
}

/** Runs `init` with the key's cached handle; a stale handle is looked up once more. */
function withKey(session: Handle, label: string, init: (key: Handle) => void): void {
  const cached = handles.get(label);
  if (cached !== undefined) {
    try {
      init(cached);
      return;
    } catch (err) {
      const name = err instanceof Error ? err.message : '';
      if (name !== 'CKR_KEY_HANDLE_INVALID' && name !== 'CKR_OBJECT_HANDLE_INVALID') throw err;
      handles.delete(label);
    }
  }
  const found = findKeyObject(lib, session, label, setup.requireLocal);
  handles.set(label, found);
  init(found);
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
