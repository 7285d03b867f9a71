import { configError } from './config-error.js';
import { Secret } from './secret.js';
import { readSettingFile } from './setting-file.js';

/** Where a secret may come from. Exactly one of the three must be set. */
export interface SecretRef {
  readonly value?: string | undefined;
  readonly file?: string | undefined;
  readonly env?: string | undefined;
}

/**
 * Resolves a secret from an inline value, a file (trailing newline trimmed) or an environment
 * variable. `configFile` and `key` name the setting in errors; the value never appears in one.
 */
export function resolveSecret(
  ref: SecretRef,
  where: { configFile: string; key: string },
  env: Readonly<Record<string, string | undefined>>,
): Secret {
  const set = [ref.value, ref.file, ref.env].filter((v) => v !== undefined).length;
  if (set !== 1) {
    throw configError(where.configFile, [{ path: where.key, expected: 'exactly one of value, file or env' }]);
  }
  if (ref.value !== undefined) return new Secret(ref.value, 'inline');
  if (ref.file !== undefined) {
    const bytes = readSettingFile(ref.file, where, 'secret file');
    const text = bytes.toString('utf8');
    bytes.fill(0);
    const value = text.replace(/\r?\n$/, '');
    if (value.length === 0)
      throw configError(where.configFile, [
        { path: where.key, expected: `a non-empty secret file ${ref.file}` },
      ]);
    return new Secret(value, `file ${ref.file}`);
  }
  const name = ref.env as string;
  const value = env[name];
  if (value === undefined || value.length === 0) {
    throw configError(where.configFile, [
      { path: where.key, expected: `environment variable ${name} to be set` },
    ]);
  }
  return new Secret(value, `env ${name}`);
}
