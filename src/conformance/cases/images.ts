// The image rows of the feature matrix: a VM from a downloaded disk image, a VM installed from an
// ISO, a snapshot with the guest's filesystems frozen. A driver that claims the capability does it;
// one that does not refuses as Unsupported with nothing made.
import { GiB } from '../../contracts/quantity.js';
import { skipped, unsupported } from '../checks.js';
import { createFully, deleteFully, powerTo, taskDone, type ConformanceCase } from '../target.js';

/** Where nothing listens: a driver without the capability must refuse before fetching anything. */
const NOWHERE = 'http://127.0.0.1:9/conformance';

export const imageImport: ConformanceCase = {
  id: 'image-import',
  title: 'imageImport: a VM is made from a downloaded disk image, twice from one download; refused as Unsupported when not claimed',
  capability: 'imageImport',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    const me = owner('urlimage');
    const source = target.imageURL ?? { url: `${NOWHERE}.qcow2` };
    const spec = { ...target.spec(vmName('urlimage'), me), image: { kind: 'url' as const, ...source, fullClone: true } };
    if (!target.driver.capabilities.imageImport) {
      await check.rejects(target.driver.create(spec), { code: 'Unsupported' }, 'a create from a URL is refused');
      check.equal(await target.driver.findByIdentity(me.uid), undefined, 'nothing made');
      unsupported('no imageImport capability; refused as Unsupported with nothing made');
    }
    if (target.imageURL === undefined) skipped('the target names no image URL the hypervisor can download');
    const vm = await createFully(target, spec);
    check.same(vm.owner, me, 'the VM carries its owner');
    check.ok(vm.disks.length >= 1, 'the VM has its disk from the image');
    // The second VM finds the image already there (drivers count their downloads in their own tests).
    const other = owner('urlimage2');
    const second = await createFully(target, { ...spec, name: vmName('urlimage2'), owner: other });
    check.same(second.owner, other, 'a second VM from the same URL');
    await deleteFully(target, { id: second.id, owner: other });
    await deleteFully(target, { id: vm.id, owner: me });
  },
};

export const isoInstall: ConformanceCase = {
  id: 'iso-install',
  title: 'isoInstall: a VM with an empty root disk of the asked size boots an installer ISO; refused as Unsupported when not claimed',
  capability: 'isoInstall',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    const me = owner('isoinstall');
    const iso = target.iso ?? { url: `${NOWHERE}.iso` };
    const spec = { ...target.spec(vmName('isoinstall'), me), image: { kind: 'iso' as const, ...iso }, disks: [{ name: 'root', sizeBytes: 2 * GiB, root: true }] };
    if (!target.driver.capabilities.isoInstall) {
      await check.rejects(target.driver.create(spec), { code: 'Unsupported' }, 'a create from an ISO is refused');
      check.equal(await target.driver.findByIdentity(me.uid), undefined, 'nothing made');
      unsupported('no isoInstall capability; refused as Unsupported with nothing made');
    }
    if (target.iso === undefined) skipped('the target names no ISO');
    const vm = await createFully(target, spec);
    check.same(vm.owner, me, 'the VM carries its owner');
    check.equal(vm.powerState, 'Off', 'created powered off');
    check.ok(vm.disks.some((disk) => disk.sizeBytes === 2 * GiB), 'an empty root disk of the asked size');
    await deleteFully(target, { id: vm.id, owner: me });
  },
};

export const quiescedSnapshot: ConformanceCase = {
  id: 'quiesced-snapshot',
  title: 'quiescedSnapshots: a snapshot with frozen filesystems is taken, or refused as Unsupported with its reason and nothing made',
  capability: 'quiescedSnapshots',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    if (!target.driver.capabilities.snapshots) unsupported('no snapshots capability');
    const me = owner('quiesce');
    const vm = await createFully(target, target.spec(vmName('quiesce'), me));
    const ref = { id: vm.id, owner: me };
    try {
      await powerTo(target, ref, 'on', 'On');
      const attempt = target.driver.snapshotCreate(ref, { name: 'quiesced', memory: false, quiesce: true });
      if (!target.driver.capabilities.quiescedSnapshots) {
        await check.rejects(attempt, { code: 'Unsupported' }, 'a quiesced snapshot is refused');
        check.same(await target.driver.snapshotList(ref), [], 'no snapshot made');
        unsupported('no quiescedSnapshots capability; refused as Unsupported');
      }
      // Claimed: the driver can, when the guest cooperates; a guest that cannot freeze is a typed refusal with its reason.
      const outcome = await attempt.then(
        (started) => ({ started }),
        (error: unknown) => ({ error: error as { code?: string; message?: string } }),
      );
      if ('error' in outcome) {
        check.equal(outcome.error.code, 'Unsupported', 'a guest that cannot freeze: refused as Unsupported');
        check.ok((outcome.error.message ?? '').length > 0, `with its reason: ${outcome.error.message ?? ''}`);
        check.same(await target.driver.snapshotList(ref), [], 'no snapshot made');
      } else {
        await taskDone(target, outcome.started.task, 'quiesced snapshot');
        check.ok((await target.driver.snapshotList(ref)).some((snapshot) => snapshot.id === outcome.started.id), 'the snapshot is listed');
      }
      await powerTo(target, ref, 'off', 'Off');
    } finally {
      await deleteFully(target, ref);
    }
  },
};
