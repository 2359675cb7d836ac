// The record of a verified disk import, kept on the host (task-scripts.ts, D/imports/<volume>):
// which file the volume was made from and what the volume's bytes hash to. Written only once the
// volume's SHA-256 on the host matched the one uploaded, so an import volume without a record is
// unfinished (an upload running, or cut short) and never used as an image.

import { BusyError } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { IMPORT_RECORD_SCRIPT } from './task-scripts.js';

export interface ImportRecord {
  /** The SHA-256 the export wrote beside the file. */
  fileSha256: string;
  /** The SHA-256 of the volume's bytes on the host. */
  volumeSha256: string;
  bytes: number;
}

export function parseImportRecord(out: string): ImportRecord | undefined {
  const match = /^([0-9a-f]{64}) ([0-9a-f]{64}) (\d+)$/.exec(out.trim());
  if (!match?.[1] || !match[2] || !match[3]) return undefined;
  return { fileSha256: match[1], volumeSha256: match[2], bytes: Number(match[3]) };
}

export async function readImportRecord(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<ImportRecord | undefined> {
  const out = await ctx.host.exec(['sh', '-c', IMPORT_RECORD_SCRIPT, 'sh', ctx.config.taskDirectory, volume], { signal, what: 'reading an import record' });
  return parseImportRecord(out);
}

export async function writeImportRecord(ctx: LibvirtContext, volume: string, record: ImportRecord, signal?: AbortSignal): Promise<void> {
  const line = `${record.fileSha256} ${record.volumeSha256} ${record.bytes}`;
  await ctx.host.exec(['sh', '-c', IMPORT_RECORD_SCRIPT, 'sh', ctx.config.taskDirectory, volume, line], { signal, what: 'recording an import' });
}

export async function removeImportRecord(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<void> {
  await ctx.host.exec(['sh', '-c', 'rm -f -- "$1/imports/$2"', 'sh', ctx.config.taskDirectory, volume], { signal, what: 'removing an import record' });
}

/** An imported image may be used once its import was verified; until then it is Busy. */
export async function requireImported(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<void> {
  if ((await readImportRecord(ctx, volume, signal)) === undefined) throw new BusyError(`image ${volume} is still being imported`);
}
