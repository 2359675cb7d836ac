// LOG_FORMAT of both servers: json (pino's lines, the default) or text, one line per entry for a
// person reading `kubectl logs` (a Provider's spec.runtime.logFormat reaches its runtime so).
// The text form is made from the JSON line after redaction and serializers ran, so it shows
// nothing the JSON would not; every value that is not a plain word is JSON-quoted, so no value
// can start a line of its own.
import { Writable } from 'node:stream';

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PLAIN = /^[A-Za-z0-9_.:/@+-]+$/;
const OMITTED = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** LOG_FORMAT's value, or undefined when it is not one (unset: json). */
export function parseLogFormat(raw: string | undefined): LogFormat | undefined {
  if (raw === undefined || raw === '') return 'json';
  return (LOG_FORMATS as readonly string[]).includes(raw) ? (raw as LogFormat) : undefined;
}

function shown(value: unknown): string {
  if (typeof value === 'string') return PLAIN.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value) ?? '';
}

/** One JSON log line as text: `<time> <LEVEL> <msg> key=value …`; a line that is not JSON passes unchanged. */
export function textLine(json: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(json);
  } catch {
    return json.replace(/\n+$/, '');
  }
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return json.replace(/\n+$/, '');
  const record = entry as Record<string, unknown>;
  const time = typeof record['time'] === 'number' ? new Date(record['time']).toISOString() : '-';
  const level = typeof record['level'] === 'number' ? (LEVEL_NAMES[record['level']] ?? String(record['level'])) : 'INFO';
  const message = typeof record['msg'] === 'string' ? record['msg'] : '';
  const fields = Object.entries(record)
    .filter(([key]) => !OMITTED.has(key))
    .map(([key, value]) => `${key}=${shown(value)}`);
  return [time, level, /^[^\n\r]*$/.test(message) ? message : JSON.stringify(message), ...fields].filter((part) => part !== '').join(' ');
}

/** A stream for pino that writes each JSON line to `out` as a text line. */
export function textLogStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      for (const line of text.split('\n')) if (line !== '') out.write(`${textLine(line)}\n`);
      done();
    },
  });
}
