// The VirtualMachine customize hook: which objects Metacontroller sends along with each sync.
// Depends on the spec only (Metacontroller caches the answer per generation).
import { API_VERSION } from '../../contracts/crds/common.js';
import type { VirtualMachineObject } from '../../contracts/crds/virtualmachine.js';
import type { CustomizeResponse, RelatedResourceRule } from '../../contracts/metacontroller.js';

export function customizeVirtualMachine(vm: VirtualMachineObject): CustomizeResponse {
  const namespace = vm.metadata.namespace ?? '';
  const spec = vm.spec;
  const rule = (apiVersion: string, resource: string, ruleNamespace: string, names: string[]): RelatedResourceRule => ({
    apiVersion,
    resource,
    namespace: ruleNamespace,
    names: [...new Set(names)].sort(),
  });
  // References to another namespace are refused by the sync hook, never looked up.
  const local = (ref: { name: string; namespace?: string | undefined }): string[] => (ref.namespace === undefined || ref.namespace === namespace ? [ref.name] : []);
  const rules: RelatedResourceRule[] = [rule(API_VERSION, 'providers', spec.providerRef.namespace ?? namespace, [spec.providerRef.name])];
  const add = (apiVersion: string, resource: string, names: string[]) => {
    if (names.length > 0) rules.push(rule(apiVersion, resource, namespace, names));
  };
  add(API_VERSION, 'vmclasses', local(spec.classRef));
  if (spec.placementRef) add(API_VERSION, 'vmplacementpolicies', [spec.placementRef.name]);
  if (spec.imageRef) add(API_VERSION, 'vmimages', local(spec.imageRef));
  if (spec.cloneFrom) add(API_VERSION, 'virtualmachines', [spec.cloneFrom.vmRef.name]);
  const revert = spec.lifecycle?.revertRequest?.snapshotRef.name ?? spec.snapshot?.revertToRef?.name;
  if (revert) add(API_VERSION, 'vmsnapshots', [revert]);
  add(API_VERSION, 'vmnetworkattachments', (spec.networks ?? []).flatMap((network) => (network.networkRef ? local(network.networkRef) : [])));
  const secrets = [spec.userData?.cloudInit?.secretRef?.name, spec.userData?.ignition?.secretRef?.name, spec.metaData?.cloudInit?.secretRef?.name];
  add('v1', 'secrets', secrets.filter((name): name is string => name !== undefined));
  // A VMMigration may hold this VM off (source.powerOffBeforeMigration); which one names it is in its spec, so all are listed.
  rules.push({ apiVersion: API_VERSION, resource: 'vmmigrations', namespace, labelSelector: {} });
  return { relatedResources: rules };
}
