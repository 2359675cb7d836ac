/**
 * Errors a handler raises, shaped like the PVE exceptions they stand for.
 * PVE handlers `die "text\n"`: the HTTP reason phrase is the first line and, since
 * libpve-http-server-perl 5.2.0 (PVE 8.4/9.x), the body carries `message` with the newline.
 */
export class PveError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, string>,
    /** PVE's own 501 "Method ... not implemented" text has no trailing newline. */
    readonly newline = true,
  ) {
    super(message);
  }
}

/** A plain `die "...\n"` inside a handler: HTTP 500 (or the task's exit status inside a worker). */
export function fail(message: string): never {
  throw new PveError(500, message);
}

/** `raise_param_exc`: 400 with per-parameter errors. */
export function paramError(errors: Record<string, string>): never {
  throw new PveError(400, 'Parameter verification failed.', errors);
}

/** The message PVE's `check_lock` dies with. */
export function lockedMessage(lock: string): string {
  return `VM is locked (${lock})`;
}

/** `add_error` joins repeated messages for one path with a literal backslash-n (Perl single quotes). */
export function addError(errors: Record<string, string>, path: string, message: string): void {
  const key = path === '' ? '_root' : path;
  const old = errors[key];
  errors[key] = old === undefined ? message : `${old}\\n${message}`;
}

/** `PVE::Exception` stringification: message line(s) followed by `key: error` lines. */
export function stringifyException(message: string, errors?: Record<string, string>): string {
  let text = message.endsWith('\n') ? message : `${message}\n`;
  for (const [key, value] of Object.entries(errors ?? {})) text += `${key}: ${value}\n`;
  return text;
}

/** What a format check dies with; `errors` is set for property strings ("format error"). */
export class FormatError extends Error {
  constructor(
    message: string,
    readonly errors?: Record<string, string>,
  ) {
    super(message);
  }

  /** The text `check_prop` puts after "invalid format - ". */
  override toString(): string {
    return stringifyException(this.message, this.errors);
  }
}
