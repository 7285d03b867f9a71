import type { Secret } from '@keygate/shared/config';
import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import pkcs11js from 'pkcs11js';
import { ckrKind, ckrName, ckrToKeygate } from './ckr-map.js';

type Handle = Buffer;

/** CKS_RW_USER_FUNCTIONS (PKCS#11 §5.x session states); pkcs11js does not export the CKS_ names. */
const CKS_RW_USER_FUNCTIONS = 3;

/** Why the token cannot be used until an operator acts (a refused login). */
export interface TokenUnusable {
  readonly code: 'HSM_PIN_INCORRECT' | 'HSM_PIN_LOCKED';
  readonly reason: string;
}

/**
 * One PKCS#11 token found by label: the loaded module, its slot and the (single) login.
 * Login state belongs to the application, not the session, so the token logs in once and again
 * only after every session was lost. A refused PIN is tried exactly once, never in a loop.
 */
export class Pkcs11Token {
  readonly lib: pkcs11js.PKCS11;
  #slot: Handle | undefined;
  #unusable: TokenUnusable | undefined;

  constructor(
    private readonly modulePath: string,
    readonly label: string,
    private readonly pin: Secret,
    private readonly logger: Logger,
    /** C_Initialize library parameters (NSS softoken's `configdir=...`); most modules take none. */
    private readonly libraryParameters?: string,
  ) {
    this.lib = new pkcs11js.PKCS11();
    try {
      this.lib.load(modulePath);
      initialize(this.lib, libraryParameters);
      users.set(modulePath, (users.get(modulePath) ?? 0) + 1);
    } catch (cause) {
      throw new KeygateError('HSM_UNAVAILABLE', {
        cause,
        detail: { modulePath, ckr: ckrName(cause) ?? 'load failed' },
      });
    }
  }

  get unusable(): TokenUnusable | undefined {
    return this.#unusable;
  }

  /** The slot holding the token, found by label (tokens can move between slots). */
  get slot(): Handle {
    if (this.#slot === undefined) this.#slot = this.findSlot();
    return this.#slot;
  }

  /** Forget the slot, so the next open looks for the token again (after a device error). */
  forgetSlot(): void {
    this.#slot = undefined;
  }

  /**
   * C_Finalize then C_Initialize: the only thing that makes SoftHSM2 see a token folder again
   * after it was briefly unavailable. Process-wide: every session, handle and the login of the
   * process go with it (the caller waits until none of its calls is in flight; the next session
   * logs in again). A refused PIN stays refused.
   */
  reinitialize(): void {
    try {
      this.lib.C_Finalize();
    } catch {
      // Not initialised (a re-initialisation that failed half-way): initialise below.
    }
    initialize(this.lib, this.libraryParameters);
    this.#slot = undefined;
  }

  /** Opens a read-write session and logs in when the application is not logged in yet. */
  openSession(): Handle {
    if (this.#unusable) throw new KeygateError(this.#unusable.code, { detail: { tokenLabel: this.label } });
    const session = this.lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      const state = this.lib.C_GetSessionInfo(session).state;
      if (state !== CKS_RW_USER_FUNCTIONS) this.login(session);
      return session;
    } catch (err) {
      this.closeQuietly(session);
      throw err;
    }
  }

  closeQuietly(session: Handle): void {
    try {
      this.lib.C_CloseSession(session);
    } catch {
      // Already gone; nothing to release.
    }
  }

  /** Unloads the module (the pool closed its sessions; other users of the module keep theirs). */
  close(): void {
    const left = (users.get(this.modulePath) ?? 1) - 1;
    users.set(this.modulePath, left);
    try {
      // The module is shared by every PKCS11 object of the process: only the last one finalizes.
      if (left === 0) this.lib.C_Finalize();
      this.lib.close();
    } catch {
      // Finalize errors at shutdown change nothing.
    }
  }

  private login(session: Handle): void {
    try {
      this.logger.info({ tokenLabel: this.label, pinSource: this.pin.source }, 'pkcs11 login');
      this.lib.C_Login(session, pkcs11js.CKU_USER, this.pin.reveal());
    } catch (err) {
      if (ckrName(err) === 'CKR_USER_ALREADY_LOGGED_IN') return;
      if (ckrKind(err) === 'pin') {
        const mapped = ckrToKeygate(err);
        const code = mapped.code === 'HSM_PIN_LOCKED' ? 'HSM_PIN_LOCKED' : 'HSM_PIN_INCORRECT';
        this.#unusable = {
          code,
          reason: `login to token "${this.label}" refused (${ckrName(err)}); fix the PIN (${this.pin.source}) and restart`,
        };
        this.logger.error(
          { tokenLabel: this.label, ckr: ckrName(err) },
          'pkcs11 login refused; token marked unusable',
        );
        throw new KeygateError(code, { cause: err, detail: { ckr: ckrName(err), tokenLabel: this.label } });
      }
      throw err;
    }
  }

  private findSlot(): Handle {
    for (const slot of this.lib.C_GetSlotList(true)) {
      if (this.lib.C_GetTokenInfo(slot).label.trimEnd() === this.label) return slot;
    }
    throw new KeygateError('HSM_UNAVAILABLE', {
      detail: { reason: 'token not found', tokenLabel: this.label },
    });
  }
}

/** PKCS11 objects of this process per module path (C_Initialize/C_Finalize are process-wide). */
const users = new Map<string, number>();

/**
 * C_Initialize with OS locking (and the library parameters when given); a module another PKCS11
 * object of this process set up is fine.
 */
export function initialize(lib: pkcs11js.PKCS11, libraryParameters?: string): void {
  try {
    lib.C_Initialize(
      libraryParameters === undefined
        ? { flags: pkcs11js.CKF_OS_LOCKING_OK }
        : { flags: pkcs11js.CKF_OS_LOCKING_OK, libraryParameters },
    );
  } catch (err) {
    if (ckrName(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
  }
}
