// Credentials in provider configurations: a Secret prints as `[redacted]` in errors, logs, JSON
// and util.inspect; `reveal()`, at the one place the wire protocol needs it, is the only way in.
import { inspect } from 'node:util';

export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return '[redacted]';
  }
}
