// cloud-init NoCloud: user-data, meta-data and network-config are written into a private temp
// directory on the host (over stdin, never on a command line) and packed there into a seed ISO
// labelled `cidata` with whichever tool the host has; the ISO becomes a pool volume of its own,
// one per VM (`undefine --remove-all-storage` would take a shared one with it).

import { stringify } from 'yaml';
import { UnsupportedError, type CreateSpec } from '../../contracts/driver.js';
import { composeMetaData } from '../common/metadata.js';
import type { LibvirtContext } from './context.js';

export interface SeedNic {
  mac: string;
  staticIP?: { address: string; gateway?: string; dns?: string[] };
}

/**
 * The seed's meta-data: the instance-id (the owner's UID, so a clone is a new instance) and a
 * hostname from the VM name, with the user's meta-data laid over them (instance-id stays ours).
 */
export function metaData(spec: Pick<CreateSpec, 'name' | 'owner'>, user?: string): string {
  const hostname = spec.name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'vm';
  return composeMetaData({ 'instance-id': spec.owner.uid, 'local-hostname': hostname }, user);
}

/** Netplan v2, matching NICs by MAC: static where the spec says so, DHCP elsewhere. */
export function networkConfig(nics: SeedNic[]): string {
  const ethernets: Record<string, unknown> = {};
  nics.forEach((nic, index) => {
    const entry: Record<string, unknown> = { match: { macaddress: nic.mac }, 'set-name': `eth${index}` };
    if (nic.staticIP) {
      entry['addresses'] = [nic.staticIP.address];
      if (nic.staticIP.gateway !== undefined) entry['routes'] = [{ to: 'default', via: nic.staticIP.gateway }];
      if (nic.staticIP.dns !== undefined && nic.staticIP.dns.length > 0) entry['nameservers'] = { addresses: nic.staticIP.dns };
    } else {
      entry['dhcp4'] = true;
    }
    ethernets[`eth${index}`] = entry;
  });
  return stringify({ version: 2, ethernets });
}

/** The ISO tool on the host, or undefined. */
export async function seedTool(ctx: LibvirtContext, signal?: AbortSignal): Promise<string | undefined> {
  const out = await ctx.host.execResult(['sh', '-c', 'command -v genisoimage || command -v xorriso || command -v cloud-localds'], { signal });
  const tool = out.stdout.trim().split('\n')[0];
  return tool === undefined || tool === '' ? undefined : tool;
}

/** Builds the seed ISO on the host and stores it as pool volume `volume`. */
export async function createSeedVolume(
  ctx: LibvirtContext,
  volume: string,
  files: { userData: string; metaData: string; networkConfig: string },
  signal?: AbortSignal,
): Promise<void> {
  const tool = await seedTool(ctx, signal);
  if (tool === undefined) throw new UnsupportedError('the libvirt host has none of genisoimage, xorriso or cloud-localds for cloud-init seed ISOs');
  const dir = (await ctx.host.exec(['mktemp', '-d', '/tmp/virtrigaud-seed.XXXXXXXX'], { signal })).trim();
  try {
    // umask 077: user-data may hold secrets; the directory is mktemp's 0700 already.
    const write = (name: string, content: string) =>
      ctx.host.exec(['sh', '-c', 'umask 077 && cat > "$1"', 'sh', `${dir}/${name}`], { stdin: content, signal });
    await write('user-data', files.userData);
    await write('meta-data', files.metaData);
    await write('network-config', files.networkConfig);
    const iso = `${dir}/seed.iso`;
    const inputs = [`${dir}/user-data`, `${dir}/meta-data`, `${dir}/network-config`];
    const mkisofs = ['-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', ...inputs];
    if (tool.endsWith('cloud-localds')) {
      await ctx.host.exec([tool, '-N', `${dir}/network-config`, iso, `${dir}/user-data`, `${dir}/meta-data`], { signal });
    } else if (tool.endsWith('xorriso')) {
      await ctx.host.exec([tool, '-as', 'mkisofs', ...mkisofs], { signal });
    } else {
      await ctx.host.exec([tool, ...mkisofs], { signal });
    }
    const size = (await ctx.host.exec(['stat', '-c', '%s', iso], { signal })).trim();
    const pool = ctx.config.storagePool;
    await ctx.host.virsh(['vol-create-as', '--pool', pool, '--name', volume, '--capacity', size, '--format', 'raw'], { signal });
    await ctx.host.virsh(['vol-upload', '--pool', pool, '--vol', volume, '--file', iso], { signal });
  } finally {
    await ctx.host.execResult(['rm', '-rf', '--', dir]).catch(() => undefined);
  }
}
