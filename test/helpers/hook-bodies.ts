// Metacontroller-shaped request bodies for every hook route, built from small parts.
import { exampleBody } from './bodies.js';

type Json = Record<string, any>;
export const API = 'infra.virtrigaud.io/v1beta1';

export function object(kind: string, name: string, rest: Json = {}, apiVersion = API): Json {
  return { apiVersion, kind, metadata: { name, namespace: 'default', uid: `uid-${name}`, generation: 1 }, ...rest };
}

/** Objects as Metacontroller maps them: `{"<Kind>.<apiVersion>": {"<namespace>/<name>": object}}`. */
export function byType(objects: Json[]): Json {
  const map: Json = {};
  for (const item of objects) {
    const key = `${item['kind']}.${item['apiVersion']}`;
    map[key] ??= {};
    map[key][`${item['metadata']['namespace']}/${item['metadata']['name']}`] = item;
  }
  return map;
}

export function hookBody(parent: Json, related: Json[] = [], children: Json[] = [], finalizing = false): Json {
  return { controller: {}, parent, related: byType(related), children: byType(children), finalizing };
}

export const VM_SPEC = { providerRef: { name: 'sim' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' } };

/** A valid body for each hook route (valid enough to reach the hook's own logic). */
export function routeBodies(): Record<string, Json> {
  const vm = exampleBody('virtualmachine-sync');
  const source = { ...vm.parent, metadata: { ...vm.parent.metadata, name: 'web' }, status: { providerID: '100' } };
  const related = Object.values(vm.related).flatMap((objects) => Object.values(objects));
  const snapshot = object('VMSnapshot', 'snap', { spec: { vmRef: { name: 'web' }, includeMemory: true } });
  const schedule = object('VMSnapshotSchedule', 'nightly', { spec: { vmRef: { name: 'web' }, schedule: '0 2 * * *', retentionPolicy: { maxCount: 3 } } });
  const clone = object('VMClone', 'copy', { spec: { sourceVMRef: { name: 'web' }, target: { name: 'web-copy' } } });
  const deleting = (parent: Json) => ({ ...parent, metadata: { ...parent['metadata'], deletionTimestamp: '2026-01-01T00:00:00Z' } });
  return {
    '/hooks/virtualmachine/customize': exampleBody('virtualmachine-customize'),
    '/hooks/virtualmachine/sync': vm,
    '/hooks/virtualmachine/finalize': exampleBody('virtualmachine-finalize'),
    '/hooks/vmclass/sync': hookBody(object('VMClass', 'small', { spec: { cpus: 2, memory: '4Gi' } })),
    '/hooks/vmimage/sync': hookBody(object('VMImage', 'ubuntu', { spec: { source: 'ubuntu-22-template' } })),
    '/hooks/vmnetworkattachment/sync': hookBody(object('VMNetworkAttachment', 'lan', { spec: { bridge: 'vmbr0', vlan: 100 } })),
    '/hooks/provider/customize': { controller: {}, parent: deleting(exampleBody('provider-sync').parent) },
    '/hooks/provider/sync': exampleBody('provider-sync'),
    '/hooks/provider/finalize': { ...exampleBody('provider-sync'), parent: deleting(exampleBody('provider-sync').parent), related: byType([source]), finalizing: true },
    '/hooks/vmsnapshot/customize': hookBody(snapshot),
    '/hooks/vmsnapshot/sync': hookBody(snapshot, [source, ...related]),
    '/hooks/vmsnapshot/finalize': hookBody(deleting({ ...snapshot, status: { vm: { name: 'web', uid: 'uid-web', providerID: '100', provider: { namespace: 'default', name: 'sim' } } } }), [source, ...related], [], true),
    '/hooks/vmsnapshotschedule/customize': hookBody(schedule),
    '/hooks/vmsnapshotschedule/sync': hookBody(schedule, [source], [object('VMSnapshot', 'nightly-202601010200', { spec: snapshot['spec'] })]),
    '/hooks/vmclone/customize': hookBody(clone),
    '/hooks/vmclone/sync': hookBody(clone, [source], [object('VirtualMachine', 'web-copy', { spec: { ...VM_SPEC, cloneFrom: { vmRef: { name: 'web' } } } })]),
  };
}
