import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { keepAsWritten } from './as-written.js';
import { type ConfigProblem, configError } from './config-error.js';
import { deepFreeze } from './deep-freeze.js';

/** Deeply read-only view of a parsed config. */
export type Frozen<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends object
    ? { readonly [K in keyof T]: Frozen<T[K]> }
    : T;

/** How a config file is read beyond its schema. */
export interface ParseOptions {
  /**
   * Dotted key paths whose values are read as the text written, whatever YAML would make of them
   * (ids: `CRK_ID: 0123` is "0123", not 123). Mapping keys are always read as written.
   */
  readonly asWritten?: readonly string[];
}

/**
 * Parses YAML text and validates it against `schema`; returns a deeply frozen, typed object.
 * Mapping keys, and the values at `options.asWritten`, keep the text written (see keepAsWritten).
 * Errors are CONFIG_INVALID naming `file`, every bad key path and what was expected.
 */
export function parseConfig<S extends z.ZodType>(
  file: string,
  text: string,
  schema: S,
  options: ParseOptions = {},
): Frozen<z.output<S>> {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw configError(
      file,
      doc.errors.map((e) => ({
        path: `line ${e.linePos?.[0]?.line ?? '?'}`,
        expected: `valid YAML (${e.code})`,
      })),
    );
  }
  keepAsWritten(doc, options.asWritten);
  const raw: unknown = doc.toJS() ?? {};
  const result = schema.safeParse(raw);
  if (!result.success) throw configError(file, issuesToProblems(result.error.issues));
  return deepFreeze(result.data) as Frozen<z.output<S>>;
}

/** Reads and parses a YAML config file (see parseConfig). A missing file is CONFIG_INVALID too. */
export function loadConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
  options: ParseOptions = {},
): Frozen<z.output<S>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'unreadable';
    throw configError(file, [{ path: '', expected: `a readable file (${code})` }], cause);
  }
  return parseConfig(file, text, schema, options);
}

/** Turns zod issues into problems that name the key and never echo the value. */
export function issuesToProblems(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  return issues.flatMap((issue): ConfigProblem[] => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({
        path: path ? `${path}.${k}` : k,
        expected: 'no such key (unknown key)',
      }));
    }
    return [{ path, expected: expectation(issue) }];
  });
}

function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return /received undefined$/.test(issue.message)
        ? `is required (${issue.expected})`
        : `expected ${issue.expected}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return `expected ${issue.origin === 'string' ? 'length ' : ''}>= ${String(issue.minimum)}`;
    case 'too_big':
      return `expected ${issue.origin === 'string' ? 'length ' : ''}<= ${String(issue.maximum)}`;
    case 'invalid_format':
      // A regex's own message says what is expected (`an instance id: …`); zod's default does not.
      if (issue.format === 'regex') {
        return `expected ${issue.message.startsWith('Invalid') ? `text matching ${issue.pattern}` : issue.message}`;
      }
      return `expected ${issue.format}`;
    case 'invalid_key':
      // A record's key: say what the key should be, not only that it is wrong.
      return issue.issues[0] ? expectation(issue.issues[0]) : issue.message;
    default:
      return issue.message;
  }
}
