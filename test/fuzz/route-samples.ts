// A valid request body for each hook route, so that generated mutations start from something the
// hook accepts and reach its own logic. The VirtualMachine, Provider, snapshot, clone and catalog
// bodies are the shared ones (test/helpers/hook-bodies.ts); the rest come from the examples and
// the Viti fixtures. A route with no sample here is still fuzzed, from a bare skeleton.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { VITI_API_VERSION } from '../../src/contracts/crds/common.js';
import { byType, hookBody, object, routeBodies } from '../helpers/hook-bodies.js';

type Json = Record<string, unknown>;
type KubeLike = Json & { kind: string; metadata: Json };

function documents(url: URL): KubeLike[] {
  return parseAllDocuments(readFileSync(url, 'utf8'))
    .map((document) => document.toJS() as unknown)
    .filter((value): value is KubeLike => typeof value === 'object' && value !== null && 'kind' in value);
}

/** The first object of `kind` in examples/<file>, with the identity fields a hook request carries. */
function fromExamples(file: string, kind: string, namespace: string | undefined = 'default'): KubeLike {
  const found = documents(new URL(`../../examples/${file}`, import.meta.url)).find((item) => item.kind === kind);
  if (!found) throw new Error(`examples/${file} has no ${kind}`);
  return withIdentity(found, namespace);
}

function fromViti(file: string, namespace?: string): KubeLike {
  const [found] = documents(new URL(`../fixtures/viti/${file}`, import.meta.url));
  if (!found) throw new Error(`test/fixtures/viti/${file} is empty`);
  return withIdentity(found, namespace);
}

function withIdentity(item: KubeLike, namespace: string | undefined): KubeLike {
  const name = String(item.metadata['name']);
  const metadata: Json = { ...item.metadata, uid: `uid-${name}`, generation: 1 };
  if (namespace === undefined) delete metadata['namespace'];
  else metadata['namespace'] = namespace;
  return { ...item, metadata };
}

const deleting = (parent: KubeLike): KubeLike => ({ ...parent, metadata: { ...parent.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } });
const customize = (parent: Json): Json => ({ controller: {}, parent });

export function routeSamples(): Record<string, Json> {
  const set = fromExamples('vmsets.yaml', 'VMSet');
  const policy = fromExamples('placement.yaml', 'VMPlacementPolicy');
  const migration = fromExamples('migration.yaml', 'VMMigration');
  const source = object('VirtualMachine', 'web-server', { spec: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' } }, status: { providerID: '100' } });
  const cluster = { ...fromViti('proxmoxcluster-token.yaml'), status: { ready: true } };
  const node = fromViti('proxmoxnode.yaml');
  const machine = fromViti('machine-vlan.yaml', 'default');
  const vitiRelated = [cluster, node];
  return {
    ...routeBodies(),
    '/hooks/vmset/sync': hookBody(set),
    '/hooks/vmplacementpolicy/customize': customize(policy),
    '/hooks/vmplacementpolicy/sync': hookBody(policy),
    '/hooks/vmmigration/customize': customize(migration),
    '/hooks/vmmigration/sync': hookBody(migration, [source]),
    '/hooks/vmmigration/finalize': hookBody(deleting(migration), [source], [], true),
    '/hooks/proxmoxcluster/customize': customize(cluster),
    '/hooks/proxmoxcluster/sync': hookBody(cluster),
    '/hooks/proxmoxcluster/finalize': hookBody(deleting(cluster), [], [], true),
    '/hooks/proxmoxnode/customize': customize(node),
    '/hooks/proxmoxnode/sync': { ...hookBody(node), related: byType(vitiRelated.slice(0, 1)) },
    '/hooks/machine/customize': customize(machine),
    '/hooks/machine/sync': { ...hookBody(machine), related: byType(vitiRelated) },
    '/hooks/machine/finalize': { ...hookBody(deleting(machine), [], [], true), related: byType(vitiRelated) },
  };
}

/** What a route with no sample is fuzzed from: the request's outline, the parent's kind guessed from the path. */
export function skeleton(route: string): Json {
  const [, , singular = 'thing', hook = 'sync'] = route.split('/');
  const parent = { apiVersion: singular.startsWith('proxmox') || singular === 'machine' ? VITI_API_VERSION : 'infra.virtrigaud.io/v1beta1', kind: singular, metadata: { name: 'x', namespace: 'default', uid: 'uid-x' }, spec: {} };
  return hook === 'customize' ? customize(parent) : { controller: {}, parent, children: {}, related: {}, finalizing: hook === 'finalize' };
}
