// Exact shapes of the untyped CRD nodes (VMImage spec.source, VMNetworkAttachment spec.network):
// the apiserver checks nothing below them, so normalize checks them against a TypeBox schema of
// their own and answers the first mistake as one line naming the field.
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';

/** `/vsphere/vlan/trunkVlanIDs/0` below `spec.network` → `spec.network.vsphere.vlan.trunkVlanIDs[0]`. */
function fieldPath(root: string, pointer: string): string {
  let path = root;
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    // A key is the user's text: bounded and without control characters before it reaches a condition.
    const key = segment.length > 100 ? `${segment.slice(0, 100)}…` : segment;
    path += /^\d+$/.test(key) ? `[${key}]` : `.${key.replace(/[\u0000-\u001f\u007f]/g, '?')}`;
  }
  return path;
}

/** The first way `value` misses `schema`, naming the field below `root`; undefined when it fits. */
export function shapeProblem(schema: TSchema, value: unknown, root: string): string | undefined {
  let first = Value.Errors(schema, value).First();
  if (!first) return undefined;
  // A misspelt key is also a missing one (`nam` for `name`): name the key the user wrote.
  if (first.type === ValueErrorType.ObjectRequiredProperty) {
    const parent = first.path.slice(0, first.path.lastIndexOf('/'));
    let seen = 0;
    for (const error of Value.Errors(schema, value)) {
      if (++seen > 100) break;
      if (error.type === ValueErrorType.ObjectAdditionalProperties && error.path.slice(0, error.path.lastIndexOf('/')) === parent) {
        first = error;
        break;
      }
    }
  }
  const where = fieldPath(root, first.path);
  const options = (first.schema as { enum?: unknown[] }).enum;
  switch (first.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `${where} is required`;
    case ValueErrorType.ObjectAdditionalProperties:
      return `${where} is not a known field`;
    default:
      if (Array.isArray(options)) return `${where} must be one of ${options.map((option) => JSON.stringify(option)).join(', ')}`;
      return `${where}: ${first.message.charAt(0).toLowerCase()}${first.message.slice(1)}`;
  }
}
