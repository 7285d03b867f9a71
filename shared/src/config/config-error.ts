import { KeygateError } from '../errors/index.js';

/** One problem of a config file: the dotted key path and what was expected there. */
export interface ConfigProblem {
  readonly path: string;
  readonly expected: string;
}

/**
 * CONFIG_INVALID naming the file and every bad key. The values themselves are never included,
 * since a misplaced secret must not be echoed to a terminal or a log.
 */
export function configError(file: string, problems: readonly ConfigProblem[], cause?: unknown): KeygateError {
  const text = problems.map((p) => `${p.path || '(top level)'}: ${p.expected}`).join('; ');
  return new KeygateError('CONFIG_INVALID', { cause, detail: { file, problems: text } });
}

/** A human-readable, multi-line description of a CONFIG_INVALID error for a CLI to print. */
export function describeConfigError(err: KeygateError): string {
  const file = err.detail?.file ?? '(unknown file)';
  const problems = String(err.detail?.problems ?? '')
    .split('; ')
    .filter(Boolean);
  return [`invalid configuration in ${file}:`, ...problems.map((p) => `  - ${p}`)].join('\n');
}
