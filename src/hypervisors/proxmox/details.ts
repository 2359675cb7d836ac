// Per-VM details (config, status/current, guest addresses) kept between syncs. A steady VM's
// describe is then answered from the shared resources snapshot alone: its row is the change
// detector — power state, lock, CPU and memory totals, boot disk size, name, tags and boot time
// all show there within one snapshot TTL — and the details are read again when the row changes,
// when this driver changed the VM, or after a TTL for what the row cannot show. Without this,
// every VM sync costs three PVE calls; with it, a small fraction of one.
//
// The bounds, and what they cost (`npm run bench:proxmox`, 500 VMs synced every minute):
// * NICs, extra disks, the description (marker) and a pause (qmpstatus) changed behind our back
//   show within DETAILS_TTL_MS, 30 min: two calls per VM per 30 min, 0.067 calls per sync.
// * Guest addresses are asked again within ADDRESSES_TTL_MS, 60 min, and at once after a reboot
//   (the row's uptime): one call per VM per hour, 0.017 per sync.
// Together with the shared resources list that stays below 0.1 PVE calls per steady sync. Every
// change this driver makes, and every owner check before one, reads the VM fresh regardless.
import { operationLock, type VmRow } from './resources.js';
import type { Row } from './values.js';

export interface VmDetails {
  config: Row;
  status: Row;
}

interface Entry extends VmDetails {
  fingerprint: string;
  fetchedAt: number;
  ips?: { values: string[]; at: number; bootedAt: number };
}

export const DETAILS_TTL_MS = 30 * 60 * 1000;
export const ADDRESSES_TTL_MS = 60 * 60 * 1000;
/** While a running guest reports no address yet (booting), ask its agent at most this often. */
export const EMPTY_ADDRESSES_RETRY_MS = 5000;

function fingerprint(row: VmRow): string {
  return [row.node, row.status, row.lock ?? '', row.maxcpu, row.maxmem, row.maxdisk, row.name, row.tags.join(';'), row.template].join('|');
}

export class DetailsCache {
  readonly #entries = new Map<number, Entry>();

  constructor(
    private readonly now: () => number,
    private readonly ttlMs = DETAILS_TTL_MS,
    private readonly addressesTtlMs = ADDRESSES_TTL_MS,
  ) {}

  /** The details of the VM in `row`, when nothing the row shows has changed since they were read. */
  get(row: VmRow): VmDetails | undefined {
    // A locked VM is in the middle of something (clone, snapshot, migration): read it every time.
    if (operationLock(row.lock) !== undefined) return undefined;
    const entry = this.#entries.get(row.vmid);
    if (entry === undefined) return undefined;
    // Stale, but kept until put(): its guest addresses outlive the config (ADDRESSES_TTL_MS).
    if (entry.fingerprint !== fingerprint(row) || this.now() - entry.fetchedAt >= this.ttlMs) return undefined;
    return entry;
  }

  put(row: VmRow, details: VmDetails): void {
    const lock = typeof details.config['lock'] === 'string' ? details.config['lock'] : undefined;
    if (operationLock(row.lock) !== undefined || operationLock(lock) !== undefined) return;
    const previous = this.#entries.get(row.vmid);
    const entry: Entry = { ...details, fingerprint: fingerprint(row), fetchedAt: this.now() };
    if (previous?.ips !== undefined) entry.ips = previous.ips;
    this.#entries.set(row.vmid, entry);
  }

  /** Guest addresses still worth reusing: non-empty, from this boot, within the TTL; or empty but asked very recently. */
  addresses(row: VmRow): string[] | undefined {
    const ips = this.#entries.get(row.vmid)?.ips;
    if (ips === undefined || Math.abs(ips.bootedAt - bootedAt(row, this.now())) > 60_000) return undefined;
    const age = this.now() - ips.at;
    if (ips.values.length === 0) return age < EMPTY_ADDRESSES_RETRY_MS ? [] : undefined;
    return age < this.addressesTtlMs ? ips.values : undefined;
  }

  putAddresses(row: VmRow, values: string[]): void {
    const entry = this.#entries.get(row.vmid);
    if (entry !== undefined) entry.ips = { values, at: this.now(), bootedAt: bootedAt(row, this.now()) };
  }

  /** After a change this driver made or saw finish: the next describe reads the VM again. */
  forget(vmid: number): void {
    this.#entries.delete(vmid);
  }
}

function bootedAt(row: VmRow, now: number): number {
  return now - row.uptime * 1000;
}
