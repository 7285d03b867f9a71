import { KeygateError } from '@keygate/shared/errors';

/** SQLSTATE classes that mean "the connection or the server is gone", not "the statement is wrong". */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (typeof e.code === 'string') {
    if (/^(08|57P|53)/.test(e.code)) return true; // connection exception, operator intervention, resources
    if (/^E[A-Z]+$/.test(e.code)) return true; // ECONNREFUSED, ECONNRESET, ETIMEDOUT, ENOTFOUND…
  }
  const m = e.message ?? '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|Connection ended/i.test(
    m,
  );
}

/** 40001 serialization failure and 40P01 deadlock: the transaction may simply be run again. */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === '40001' || code === '40P01';
}

/** Readiness text for a database error: the SQLSTATE or errno and pg's message (never a password). */
export function describeError(err: unknown): string {
  if (err instanceof KeygateError) return String(err.detail?.reason ?? err.message);
  const e = err as { code?: string; message?: string };
  return [e.code, e.message].filter((x) => x !== undefined && x !== '').join(' ') || 'unknown error';
}
