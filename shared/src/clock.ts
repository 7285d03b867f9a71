/**
 * Time, passed in so that expiry, rotation, deadlines and audit dates test deterministically
 * (a fake clock is `{ now: () => new Date(t) }`). One shape for the gateway and the shim; code
 * that counts milliseconds takes `now().getTime()`.
 */
export interface Clock {
  /** The current time. */
  now(): Date;
}

/** The machine clock. */
export const systemClock: Clock = { now: () => new Date() };
