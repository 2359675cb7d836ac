// `kubectl explain` documents every field: every node of every generated CRD schema carries a
// description (upstream VirtRigaud documents all of its fields; ours must not explain less).
import t from 'tap';
import { parse } from 'yaml';
import { renderManifests } from '../../src/manifests/render.js';

type Json = Record<string, unknown>;

/** The paths of schema nodes without a description, below `path`. */
function undocumented(node: Json, path: string): string[] {
  const found: string[] = [];
  const description = node['description'];
  if (typeof description !== 'string' || description.trim() === '') found.push(path);
  const properties = node['properties'];
  if (properties !== null && typeof properties === 'object') {
    for (const [key, child] of Object.entries(properties as Record<string, Json>)) found.push(...undocumented(child, `${path}.${key}`));
  }
  const items = node['items'];
  if (items !== null && typeof items === 'object' && !Array.isArray(items)) found.push(...undocumented(items as Json, `${path}[]`));
  const additional = node['additionalProperties'];
  if (additional !== null && typeof additional === 'object') found.push(...undocumented(additional as Json, `${path}.*`));
  return found;
}

for (const [path, text] of renderManifests()) {
  if (!path.startsWith('manifests/crds/')) continue;
  const crd = parse(text) as Json;
  const kind = ((crd['spec'] as Json)['names'] as Json)['kind'] as string;
  t.test(`every schema node of ${kind} has a description`, async (t) => {
    for (const version of (crd['spec'] as Json)['versions'] as Json[]) {
      const schema = (version['schema'] as Json)['openAPIV3Schema'] as Json;
      // The root and metadata are Kubernetes' own; kubectl explains them from the apiserver.
      const properties = schema['properties'] as Record<string, Json>;
      const missing = ['spec', 'status'].flatMap((key) => (properties[key] ? undocumented(properties[key], key) : []));
      t.same(missing, [], `${kind} ${String(version['name'])}: ${missing.length} nodes without a description`);
    }
  });
}
