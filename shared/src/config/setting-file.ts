import { readFileSync } from 'node:fs';
import { configError } from './config-error.js';

/** The setting a file path came from: the config file and the dotted key, for CONFIG_INVALID. */
export interface SettingRef {
  readonly configFile: string;
  readonly key: string;
}

/**
 * The bytes of the file a setting names (a PEM, a key or a secret file). An unreadable file is
 * CONFIG_INVALID naming the config file, the key, the path and the errno code, never the content.
 * `what` names the file in that message ("file", "secret file").
 */
export function readSettingFile(path: string, where: SettingRef, what = 'file'): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'unreadable';
    throw configError(
      where.configFile,
      [{ path: where.key, expected: `a readable ${what} ${path} (${code})` }],
      cause,
    );
  }
}
