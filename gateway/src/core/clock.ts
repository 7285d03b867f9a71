/** Time, injected so that dates in records and audit events are testable. */
export interface Clock {
  now(): Date;
}

/** The machine clock. */
export const systemClock: Clock = { now: () => new Date() };
