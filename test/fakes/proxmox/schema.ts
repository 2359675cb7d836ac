/**
 * The official PVE API schema (the api-viewer tree of pve-docs), loaded once and indexed
 * so that a request path finds its method description in a few map lookups.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';
export const HTTP_METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'DELETE'];

/** One property description, as PVE's JSONSchema.pm understands it. */
export interface PropSchema {
  type?: string;
  optional?: number | boolean;
  format?: string | FormatHash;
  pattern?: string;
  enum?: (string | number)[];
  minimum?: number | string;
  maximum?: number | string;
  maxLength?: number | string;
  minLength?: number | string;
  default_key?: number | boolean;
  alias?: string;
  keyAlias?: string;
  requires?: string | PropSchema;
  items?: PropSchema;
  properties?: Record<string, PropSchema>;
  additionalProperties?: number | boolean | PropSchema;
  oneOf?: PropSchema[];
  default?: unknown;
  description?: string;
  group?: string;
}

/** A property-string format given as an object: sub-key → schema. */
export type FormatHash = Record<string, PropSchema>;

export interface MethodInfo {
  method: HttpMethod;
  name?: string;
  parameters?: { additionalProperties?: number | boolean; properties?: Record<string, PropSchema> };
  returns?: PropSchema;
  allowtoken?: number;
  protected?: number;
  proxyto?: string;
}

interface ApiNode {
  path: string;
  text?: string;
  leaf?: number;
  info?: Partial<Record<HttpMethod, MethodInfo>>;
  children?: ApiNode[];
}

interface TrieNode {
  literal: Map<string, TrieNode>;
  variable?: { name: string; node: TrieNode };
  api?: ApiNode;
}

export interface RouteMatch {
  /** The schema path, e.g. `/nodes/{node}/qemu/{vmid}/config`. */
  template: string;
  pathParams: Record<string, string>;
  info: MethodInfo;
  childSegments: string[];
}

export type PathLookup =
  | { kind: 'found'; match: RouteMatch }
  | { kind: 'no-method' }
  | { kind: 'no-path' };

/** Highest index for the schema's `name[n]` parameters (qemu-server's MAX_* constants). */
const INDEX_MAX: Record<string, number> = {
  net: 31,
  ipconfig: 31,
  scsi: 30,
  virtio: 15,
  sata: 5,
  ide: 3,
  unused: 255,
  hostpci: 15,
  usb: 13,
  serial: 3,
  parallel: 2,
  numa: 7,
  virtiofs: 9,
  link: 7,
  mp: 255,
  dev: 255,
  acmedomain: 4,
};

export class ApiSchema {
  private readonly root: TrieNode = { literal: new Map() };

  constructor(tree: ApiNode[]) {
    const visit = (nodes: ApiNode[]): void => {
      for (const node of nodes) {
        this.insert(node);
        if (node.children) visit(node.children);
      }
    };
    visit(tree);
  }

  private insert(node: ApiNode): void {
    let cursor = this.root;
    for (const segment of splitPath(node.path)) {
      const variable = /^\{(.+)\}$/.exec(segment);
      if (variable) {
        const name = variable[1] ?? '';
        cursor.variable ??= { name, node: { literal: new Map() } };
        cursor = cursor.variable.node;
      } else {
        let next = cursor.literal.get(segment);
        if (!next) {
          next = { literal: new Map() };
          cursor.literal.set(segment, next);
        }
        cursor = next;
      }
    }
    cursor.api = node;
  }

  /**
   * Finds the handler description like RESTHandler::find_handler: one path component per `{var}`,
   * except below a subclass registered with `fragmentDelimiter => ''`, whose rest of the path is
   * one component (a volume ID such as `local:import/disk.qcow2` in storage content paths).
   */
  lookup(method: HttpMethod, path: string): PathLookup {
    const pathParams: Record<string, string> = {};
    let cursor: TrieNode | undefined = this.root;
    const segments = splitPath(path);
    for (let index = 0; index < segments.length; index += 1) {
      if (cursor.api !== undefined && WHOLE_REST.has(cursor.api.path) && index < segments.length - 1) {
        segments.splice(index, segments.length - index, segments.slice(index).join('/'));
      }
      const segment = segments[index] ?? '';
      const literal: TrieNode | undefined = cursor.literal.get(segment);
      if (literal) {
        cursor = literal;
      } else if (cursor.variable) {
        pathParams[cursor.variable.name] = segment;
        cursor = cursor.variable.node;
      } else {
        return { kind: 'no-path' };
      }
    }
    const api = cursor.api;
    if (!api) return { kind: 'no-path' };
    const info = api.info?.[method];
    if (!info) return { kind: 'no-method' };
    const childSegments = (api.children ?? []).map((child) => splitPath(child.path).at(-1) ?? '');
    return { kind: 'found', match: { template: api.path, pathParams, info, childSegments } };
  }

  /** The method description of a schema path (for tests of the fake and for type lookups). */
  method(method: HttpMethod, template: string): MethodInfo {
    const found = this.lookup(method, template);
    if (found.kind !== 'found') throw new Error(`schema has no ${method} ${template}`);
    return found.match.info;
  }
}

// pve-storage API2/Storage/Status.pm registers its Content subclass with `fragmentDelimiter => ''`.
const WHOLE_REST: ReadonlySet<string> = new Set(['/nodes/{node}/storage/{storage}/content']);

export function splitPath(path: string): string[] {
  return path.split('/').filter((segment) => segment !== '');
}

/**
 * The schema entry for a parameter name: exact names first, then `net5` → `net[n]`
 * when the index is within qemu-server's limit.
 */
export function resolveProperty(
  properties: Record<string, PropSchema>,
  name: string,
): { schema: PropSchema; indexed: boolean } | undefined {
  const exact = properties[name];
  if (exact && !name.endsWith('[n]')) return { schema: exact, indexed: false };
  const match = /^([a-z][a-z_-]*?)(\d+)$/.exec(name);
  if (!match) return undefined;
  const base = match[1] ?? '';
  const digits = match[2] ?? '';
  const schema = properties[`${base}[n]`];
  if (!schema) return undefined;
  const index = Number(digits);
  if (String(index) !== digits) return undefined;
  if (index > (INDEX_MAX[base] ?? Number.MAX_SAFE_INTEGER)) return undefined;
  return { schema, indexed: true };
}

let loaded: ApiSchema | undefined;

/** The PVE 9.1 schema from test/fixtures/proxmox, parsed on first use. */
export function pveSchema(): ApiSchema {
  if (!loaded) {
    const file = fileURLToPath(new URL('../../fixtures/proxmox/pve-apidata.json', import.meta.url));
    loaded = new ApiSchema(JSON.parse(readFileSync(file, 'utf8')) as ApiNode[]);
  }
  return loaded;
}

/** Property schema of one qemu config key, for typing GET config values like PVE does. */
export function qemuConfigProperty(key: string): PropSchema | undefined {
  const info = pveSchema().method('GET', '/nodes/{node}/qemu/{vmid}/config');
  const properties = info.returns?.properties ?? {};
  return resolveProperty(properties, key)?.schema;
}

/** The schema of a qemu create parameter (drive/net formats for parsing stored values). */
export function qemuCreateProperty(key: string): PropSchema | undefined {
  const info = pveSchema().method('POST', '/nodes/{node}/qemu');
  return resolveProperty(info.parameters?.properties ?? {}, key)?.schema;
}
