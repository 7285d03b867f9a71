import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A secret value (PIN, API key, password). It never prints itself: String(), JSON and
 * util.inspect all show "[redacted]". Call reveal() at the one place the value is used.
 */
export class Secret {
  readonly #value: string;
  /** Where the value came from ("file /etc/x", "env API_KEY", "inline"), safe to log. */
  readonly source: string;

  constructor(value: string, source: string) {
    this.#value = value;
    this.source = source;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${this.source})`;
  }
}
