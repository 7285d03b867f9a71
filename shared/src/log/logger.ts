import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/** Log levels keygate accepts in config files. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Paths pino blanks out wherever they appear (one level deep through `*`). A last line of
 * defence: code must not log secrets in the first place.
 */
export const REDACT_PATHS: readonly string[] = [
  'pin',
  'apiKey',
  'apikey',
  'api_key',
  'token',
  'accessToken',
  'access_token',
  'refresh_token',
  'plaintext',
  'dek',
  'password',
  'secret',
  'privateKey',
  'authorization',
]
  .flatMap((k) => [k, `*.${k}`])
  .concat(['req.headers.authorization', 'req.headers.cookie', 'headers.authorization']);

export interface LoggerSettings {
  readonly level?: LogLevel;
  /** Program name, written as `svc` on every line. */
  readonly name?: string;
  /** Where lines go; stdout when absent. Tests pass a stream to capture lines. */
  readonly destination?: DestinationStream;
  /** Extra redaction paths. */
  readonly redact?: readonly string[];
}

/** A JSON-lines logger: `{"level":"info","ts":"2026-…Z","svc":"…","msg":"…"}`. */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? 'info',
    messageKey: 'msg',
    base: settings.name ? { svc: settings.name } : null,
    timestamp: () => `,"ts":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: [...REDACT_PATHS, ...(settings.redact ?? [])], censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
  };
  return settings.destination ? pino(options, settings.destination) : pino(options);
}

/** A child logger whose every line carries the request id. */
export function requestLogger(logger: Logger, reqId: string, extra: Record<string, unknown> = {}): Logger {
  return logger.child({ reqId, ...extra });
}
