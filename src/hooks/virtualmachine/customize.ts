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
  const rules: RelatedResourceRule[] = [
    rule(API_VERSION, 'providers', spec.providerRef.namespace ?? namespace, [spec.providerRef.name]),
    rule(API_VERSION, 'vmclasses', namespace, [spec.classRef.name]),
  ];
  if (spec.imageRef) rules.push(rule(API_VERSION, 'vmimages', namespace, [spec.imageRef.name]));
  if (spec.cloneFrom) rules.push(rule(API_VERSION, 'virtualmachines', namespace, [spec.cloneFrom.vmRef.name]));
  const revert = spec.lifecycle?.revertRequest;
  if (revert) rules.push(rule(API_VERSION, 'vmsnapshots', namespace, [revert.snapshotRef.name]));
  const networks = (spec.networks ?? []).flatMap((network) => (network.networkRef ? [network.networkRef.name] : []));
  if (networks.length > 0) rules.push(rule(API_VERSION, 'vmnetworkattachments', namespace, networks));
  const secret = spec.userData?.cloudInit?.secretRef;
  if (secret) rules.push(rule('v1', 'secrets', namespace, [secret.name]));
  return { relatedResources: rules };
}
