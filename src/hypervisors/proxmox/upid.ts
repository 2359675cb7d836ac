// PVE task identifiers. Format and regex from pve-common `PVE/UPID.pm` (NOTES §5):
// UPID:<node>:<pid 8hex>:<pstart 8-9hex>:<starttime 8hex>:<type>:<id>:<user>:

const UPID = /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

export interface Upid {
  node: string;
  pid: number;
  pstart: number;
  /** Epoch seconds. */
  starttime: number;
  /** Worker type: qmclone, qmstart, qmconfig… */
  type: string;
  /** Usually a VMID; for qmclone the *source* VMID. May be empty. */
  id: string;
  /** `user@realm`, or `user@realm!token` for a task started with an API token. */
  user: string;
}

export function parseUpid(value: string): Upid | undefined {
  const match = UPID.exec(value);
  if (!match) return undefined;
  const [, node = '', , pid = '', pstart = '', starttime = '', type = '', id = '', user = ''] = match;
  return {
    node,
    pid: Number.parseInt(pid, 16),
    pstart: Number.parseInt(pstart, 16),
    starttime: Number.parseInt(starttime, 16),
    type,
    id,
    user,
  };
}

export function isUpid(value: unknown): value is string {
  return typeof value === 'string' && UPID.test(value);
}
