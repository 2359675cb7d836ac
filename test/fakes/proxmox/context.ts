/** What a handler receives and returns. */
import type { Sessions } from './auth.js';
import type { FaultSet } from './faults.js';
import type { HttpMethod } from './schema.js';
import type { World } from './state.js';
import type { Tasks } from './tasks.js';
import type { ParamValue } from './validate.js';

export interface AuthInfo {
  kind: 'token' | 'ticket' | 'anonymous';
  /** `user@realm` */
  user: string;
  tokenid?: string;
}

/** The user as PVE prints it into UPIDs: `user@realm` or `user@realm!token`. */
export function authUser(auth: AuthInfo): string {
  return auth.tokenid === undefined ? auth.user : `${auth.user}!${auth.tokenid}`;
}

/** Validated request parameters (path parameters included) with typed accessors. */
export class Params {
  constructor(readonly values: ReadonlyMap<string, ParamValue>) {}

  has(name: string): boolean {
    const value = this.values.get(name);
    return value !== undefined && value !== null;
  }

  str(name: string): string | undefined {
    const value = this.values.get(name);
    if (typeof value === 'string') return value;
    if (typeof value === 'boolean') return value ? '1' : '0';
    return undefined;
  }

  /** A parameter the schema marks as required. */
  need(name: string): string {
    const value = this.str(name);
    if (value === undefined) throw new Error(`validated parameter '${name}' missing`);
    return value;
  }

  int(name: string): number | undefined {
    const value = this.str(name);
    return value === undefined ? undefined : Number.parseInt(value, 10);
  }

  bool(name: string): boolean | undefined {
    const value = this.values.get(name);
    if (typeof value === 'boolean') return value;
    if (typeof value === 'string') return value === '1';
    return undefined;
  }

  list(name: string): string[] {
    const value = this.values.get(name);
    if (Array.isArray(value)) return [...(value as readonly string[])];
    return typeof value === 'string' ? [value] : [];
  }

  names(): string[] {
    return [...this.values.keys()].filter((name) => this.has(name));
  }
}

export interface Ctx {
  method: HttpMethod;
  /** Decoded path below /api2/json. */
  path: string;
  template: string;
  params: Params;
  auth: AuthInfo;
  world: World;
  tasks: Tasks;
  faults: FaultSet;
  sessions: Sessions;
  childSegments: string[];
}

export interface Reply {
  data: unknown;
  total?: number;
}

export type Handler = (ctx: Ctx) => Reply | Promise<Reply>;

export const reply = (data: unknown, total?: number): Reply => (total === undefined ? { data } : { data, total });
