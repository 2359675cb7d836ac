// vrtg's tests run main() in-process against the recording stand-in kubectl
// (test/fixtures/cli/vrtg/bin/kubectl) first on PATH, with a clock whose sleep only moves time on.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { main } from '../../../src/cli/vrtg.js';
import type { Clock } from '../../../src/cli/vrtg/context.js';
import { loadCrdValidators, type CrdValidator } from '../../helpers/crd-validator.js';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/cli/vrtg/', import.meta.url));
export const BIN = join(FIXTURES, 'bin');
export const CLUSTER = join(FIXTURES, 'cluster');
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The stand-in's objects are dated relative to this. */
export const NOW = new Date('2026-12-07T12:00:00Z');

export interface Call {
  argv: string[];
  stdin: string;
}

export interface Outcome {
  code: number;
  out: string;
  err: string;
  calls: Call[];
  /** How long the fake clock moved (sleeps). */
  slept: number;
}

export function fakeClock(start: Date = NOW): Clock & { slept: number } {
  let now = start.getTime();
  const clock = {
    slept: 0,
    now: () => new Date(now),
    sleep: async (ms: number) => {
      now += ms;
      clock.slept += ms;
    },
  };
  return clock;
}

/** Runs `vrtg argv` with the stand-in kubectl; `env` adds to (or, with PATH, replaces) the defaults. */
export async function vrtg(t: Test, argv: string[], env: Record<string, string> = {}, invokedAs?: string): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'kubectl.log');
  let out = '';
  let err = '';
  const clock = fakeClock();
  const code = await main(
    argv,
    { PATH: `${BIN}${delimiter}${dirname(process.execPath)}`, HOME: process.env['HOME'] ?? '/tmp', VRTG_FAKE_LOG: log, ...env },
    { out: (text) => (out += text), err: (text) => (err += text) },
    { clock, ...(invokedAs === undefined ? {} : { invokedAs }) },
  );
  const calls = existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Call)
    : [];
  return { code, out, err, calls, slept: clock.slept };
}

/** A fixture object of the stand-in's cluster. */
export function clusterObject(plural: string, name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(CLUSTER, plural, `${name}.json`), 'utf8')) as Record<string, unknown>;
}

/** The apiserver stand-in for the generated CRDs (manifests/crds). */
export function crd(kind: string): CrdValidator {
  const validator = loadCrdValidators(join(ROOT, 'manifests', 'crds')).get(kind);
  if (validator === undefined) throw new Error(`no CRD for ${kind}`);
  return validator;
}

/** Compares `actual` with test/fixtures/cli/vrtg/golden/<name>; UPDATE_GOLDEN=1 writes it instead. */
export function golden(t: Test, name: string, actual: string): void {
  const path = join(FIXTURES, 'golden', name);
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(path, actual);
  t.equal(actual, readFileSync(path, 'utf8'), `golden/${name}`);
}

/** A merge patch as `kubectl patch --type merge -p` reads it. */
export function patchOf(call: Call | undefined): unknown {
  if (call === undefined) throw new Error('no call');
  const index = call.argv.indexOf('-p');
  return JSON.parse(call.argv[index + 1] ?? 'null') as unknown;
}

/** A PATH of a fresh directory holding only node and the named stand-ins (no kubectl of the machine's). */
export function onlyOnPath(t: Test, standIns: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-path-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  symlinkSync(process.execPath, join(dir, 'bin', 'node'));
  for (const name of standIns) symlinkSync(join(BIN, name), join(dir, 'bin', name));
  return join(dir, 'bin');
}
