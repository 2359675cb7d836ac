// What a migration's disk transfer costs on this machine, libvirt → libvirt through the real
// peer (test/libvirt/setup.sh): a VM whose 1 GiB root disk holds random bytes (nothing for qcow2
// to skip or compress) is exported over SSH into the migration directory, then imported into the
// pool again, as a VMMigration does between two libvirt Providers. Next to it, the physical limit
// on the same file: a plain `cp` and a `qemu-img convert`. Prints MB/s (10^6 bytes per second of
// the disk's virtual size).
//
//   bash test/libvirt/setup.sh && npm run bench:migration      (SIZE_MIB=1024 by default)
import { execFileSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Driver, Identity, Started } from '../src/contracts/driver.js';
import { MiB } from '../src/contracts/quantity.js';
import { libvirtPeer, peerSpec, taskDone } from '../test/helpers/libvirt-peer.js';

const SIZE_MIB = Number(process.env['SIZE_MIB'] ?? 1024);
const BYTES = SIZE_MIB * MiB;

const teardowns: (() => unknown)[] = [];
const fakeTest = {
  teardown: (fn: () => unknown) => teardowns.push(fn),
  plan: (_n: number, why: string) => {
    throw new Error(why);
  },
  fail: (why: string) => {
    throw new Error(why);
  },
} as unknown as Test;

const owner = (name: string): Identity => ({ uid: `00000000-0000-4000-8000-bench${name.padStart(7, '0').slice(-7)}`, namespace: 'bench', name });

async function timed(what: string, run: () => Promise<void> | void): Promise<{ what: string; seconds: number }> {
  const start = performance.now();
  await run();
  return { what, seconds: (performance.now() - start) / 1000 };
}

async function done(driver: Driver, started: Promise<Started>): Promise<void> {
  await taskDone(driver, await started);
}

async function main(): Promise<void> {
  const peer = await libvirtPeer(fakeTest);
  if (peer === undefined) throw new Error('no libvirt peer');
  const driver = peer.driver();
  const base = `vr-bench-random-${SIZE_MIB}m.raw`;
  const poolXml = (await peer.virsh(['pool-dumpxml', peer.pool])).stdout;
  const poolDir = /<path>([^<]+)<\/path>/.exec(poolXml)?.[1];
  if (poolDir === undefined) throw new Error(`pool ${peer.pool} has no directory`);
  const made = await peer.exec(['sh', '-c', 'test -f "$1" || head -c "$2" /dev/urandom > "$1"; virsh -q -c qemu:///system pool-refresh "$3" >/dev/null', 'sh', join(poolDir, base), String(BYTES), peer.pool]);
  if (made.code !== 0) throw new Error(`making the random base failed: ${made.stderr}`);

  const source = owner('source');
  const target = owner('target');
  const created = await driver.create(peerSpec(peer, 'vr-bench-source', source, { image: { kind: 'template', ref: base, fullClone: true }, disks: [{ name: 'root', sizeBytes: BYTES, root: true }] }));
  await taskDone(driver, created);
  const ref = { id: created.id, owner: source };
  const rows: { what: string; seconds: number }[] = [];
  try {
    const qcow2 = { path: 'bench/root.qcow2', format: 'qcow2' as const };
    const raw = { path: 'bench/root.raw', format: 'raw' as const };
    rows.push(await timed('export → qcow2 (vol-download over SSH, qemu-img convert, sha256)', () => done(driver, driver.exportDisk(ref, { disk: 'root', file: qcow2 }))));
    rows.push(await timed('export → raw', () => done(driver, driver.exportDisk(ref, { disk: 'root', file: raw }))));
    rows.push(await timed('import ← qcow2 (vol-upload over SSH, host sha256)', async () => {
      const imported = await driver.importDisk(target, { name: 'root', file: qcow2 });
      await taskDone(driver, imported);
    }));
    const exported = join(peer.migrationDir, qcow2.path);
    const copy = join(peer.migrationDir, 'bench/copy.qcow2');
    const converted = join(peer.migrationDir, 'bench/converted.qcow2');
    rows.push(await timed('cp of the exported qcow2 (local, synced)', () => {
      execFileSync('cp', [exported, copy]);
      execFileSync('sync', [copy]);
    }));
    rows.push(await timed('qemu-img convert qcow2 → qcow2 (local)', () => {
      execFileSync('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'qcow2', exported, converted]);
      execFileSync('sync', [converted]);
    }));
    rows.push(await timed('sha256sum of the exported qcow2 (local)', () => void execFileSync('sha256sum', [exported])));
    const fileMiB = statSync(exported).size / MiB;
    const export1 = rows[0]?.seconds ?? 0;
    const import1 = rows[2]?.seconds ?? 0;
    console.log(`\nDisk transfer, libvirt → libvirt on this machine: ${SIZE_MIB} MiB of random bytes (qcow2 file ${fileMiB.toFixed(0)} MiB)\n`);
    console.log('| step | seconds | MB/s |');
    console.log('|---|---:|---:|');
    for (const row of rows) console.log(`| ${row.what} | ${row.seconds.toFixed(2)} | ${(BYTES / 1e6 / row.seconds).toFixed(0)} |`);
    console.log(`| whole transfer (export qcow2 + import) | ${(export1 + import1).toFixed(2)} | ${(BYTES / 1e6 / (export1 + import1)).toFixed(0)} |`);
  } finally {
    await taskDone(driver, await driver.deleteImportedDisk(target, 'root')).catch(() => undefined);
    await taskDone(driver, await driver.delete(ref)).catch(() => undefined);
    await peer.exec(['sh', '-c', 'rm -f "$1"; virsh -q -c qemu:///system pool-refresh "$2" >/dev/null', 'sh', join(poolDir, base), peer.pool]);
    rmSync(join(peer.migrationDir, 'bench'), { recursive: true, force: true });
    await driver.close();
    for (const teardown of teardowns.reverse()) await teardown();
    peer.close();
  }
}

await main();
