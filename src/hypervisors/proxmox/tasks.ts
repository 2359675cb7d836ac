// Task status by UPID (NOTES §5). The node is in the UPID; PVE answers only there.

import { NotFoundError, type TaskStatus } from '../../contracts/driver.js';
import { segment } from './client.js';
import { classifyFailure } from './errors.js';
import { parseUpid } from './upid.js';
import { isRow, rows, str } from './values.js';
import type { ProxmoxContext } from './vm.js';

const TAIL_LINES = 4;
const FIRST_PAGE = 50;

export async function taskStatus(ctx: ProxmoxContext, upid: string, signal?: AbortSignal): Promise<TaskStatus> {
  const parsed = parseUpid(upid);
  if (parsed === undefined) throw new NotFoundError(`task ${upid} not found: not a PVE UPID`);
  // `:`, `!` and `@` appear in UPIDs: the path segment must be encoded.
  const base = `/nodes/${segment(parsed.node)}/tasks/${segment(upid)}`;
  const data = await ctx.client.get(`${base}/status`, undefined, { signal });
  const status = isRow(data) ? data : {};
  if (str(status['status']) === 'running') return { state: 'running' };
  // The task changed its VM (the UPID's id); a clone's id is the source, which a clone changes too.
  const vmid = Number(parsed.id);
  if (parsed.id !== '' && Number.isInteger(vmid)) ctx.details.forget(vmid);
  // Locks and power states the task changed show in the next snapshot, not the cached one.
  ctx.directory.invalidate();
  const exit = str(status['exitstatus']) ?? 'unexpected status';
  // PVE::UPID::status_is_error: OK and WARNINGS are successes.
  if (exit === 'OK' || exit.startsWith('WARNINGS')) return { state: 'succeeded', progress: 100 };
  // An exit status no rule knows is HypervisorError (retryable), never the user's mistake.
  return { state: 'failed', error: await failureText(ctx, base, exit, signal), errorCode: classifyFailure(exit) };
}

/**
 * Why a task failed: the last lines of its log, which say more than the exit status alone
 * ("TASK ERROR: clone failed: …" follows the storage's own complaint). The log is read from the
 * start (PVE has no tail query); a long one is read again from `total` minus a few lines.
 */
async function failureText(ctx: ProxmoxContext, base: string, exit: string, signal?: AbortSignal): Promise<string> {
  try {
    let page = await readLog(ctx, base, 0, FIRST_PAGE, signal);
    if (page.total > FIRST_PAGE) page = await readLog(ctx, base, page.total - TAIL_LINES, TAIL_LINES, signal);
    const tail = page.lines
      .map((line) => line.replace(/^TASK ERROR: /, '').trim())
      .filter((line) => line !== '' && line !== 'TASK OK')
      .slice(-TAIL_LINES)
      .map(redact);
    return tail.length > 0 ? tail.join('; ') : redact(exit);
  } catch {
    return redact(exit);
  }
}

async function readLog(
  ctx: ProxmoxContext,
  base: string,
  start: number,
  limit: number,
  signal?: AbortSignal,
): Promise<{ total: number; lines: string[] }> {
  const page = await ctx.client.getPage(`${base}/log`, { start, limit }, { signal });
  const lines = rows(page.data).map((row) => str(row['t']) ?? '');
  return { total: page.total ?? start + lines.length, lines };
}

// qmconfig logs its parameters ("update VM 120: -cipassword … -sshkeys …"), and a download its
// URL ("downloading <url> to …", "download failed: command 'wget … <url>' failed"): a migration
// file's carries the token that grants it (file-server.ts), an image's may carry credentials
// (`https://user:password@…`) or a signed query. Those stay out of messages.
function redact(line: string): string {
  return line
    .replace(/-(cipassword|sshkeys|password)\s+\S+/g, '-$1 <hidden>')
    .replace(/\/files\/[0-9a-f]{64}\//g, '/files/<token>/')
    .replace(/\b((?:https?|ftp):\/\/)[^\s/@'"]*@/gi, '$1<credentials>@')
    .replace(/\b((?:https?|ftp):\/\/[^\s?#'"]*)[?#][^\s'"]*/gi, '$1?<query>');
}
