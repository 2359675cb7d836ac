// `vcts run` flags: what to check (a provider from the environment, or a running runtime), which
// cases, what the run's VMs are made from, how the report is written.
import { randomBytes, randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { GiB, parseDuration, parseQuantity } from '../../contracts/quantity.js';
import { CliError } from '../common.js';

export const PROVIDERS = ['proxmox', 'vsphere', 'libvirt', 'simulator'] as const;
export type ProviderKind = (typeof PROVIDERS)[number];

export const REPORT_FORMATS = ['table', 'json', 'yaml', 'junit'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export type TargetChoice = { kind: 'provider'; provider: ProviderKind } | { kind: 'runtime'; url: string; tokenFile: string };

export interface RunOptions {
  target: TargetChoice;
  /** Globs over case ids; empty: every case. */
  cases: string[];
  /** Globs over case ids left out. */
  exclude: string[];
  destructive: boolean;
  foreignVM?: string;
  template?: string;
  network?: string;
  datastore?: string;
  linked: boolean;
  cpus: number;
  memoryBytes: number;
  rootDiskBytes?: number;
  /** Ends with '-': every VM name and owner name of the run starts with it. */
  prefix: string;
  requestedId: number;
  migrationDir?: string;
  /** --image-url: a disk image the hypervisor can download (image-import case). */
  imageURL?: { url: string; checksum?: string };
  /** --iso: an installer ISO the hypervisor has or can download (iso-install case). */
  iso?: { ref?: string; url?: string; checksum?: string };
  format: ReportFormat;
  output?: string;
  /** The longest one case (and the cleanup of one VM) may take. */
  timeoutMs: number;
}

/** The prefix's own rule: a DNS label start every hypervisor accepts in a VM name, ending with '-'. */
const PREFIX = /^[a-z][a-z0-9-]{0,30}-$/;
const DEFAULT_TIMEOUT = '10m';

/** VM IDs far above what PVE hands out (from 100 up), so the explicitId case asks for a free one. */
const REQUESTED_ID_RANGE = [900_000_000, 999_000_000] as const;

function positiveInteger(flag: string, raw: string, max: number): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1 || value > max) throw new CliError(`${flag} must be a whole number from 1 to ${max}, not "${raw}"`);
  return value;
}

function bytes(flag: string, raw: string): number {
  const value = parseQuantity(raw);
  if (value === undefined || value <= 0 || !Number.isSafeInteger(value)) throw new CliError(`${flag} must be a size such as 2Gi or 512Mi, not "${raw}"`);
  return value;
}

function oneOf<T extends string>(flag: string, raw: string, allowed: readonly T[]): T {
  const found = allowed.find((candidate) => candidate === raw);
  if (found === undefined) throw new CliError(`${flag} must be ${allowed.join(', ')}, not "${raw}"`);
  return found;
}

function globs(flag: string, values: string[] | undefined): string[] {
  const list = (values ?? []).flatMap((entry) => entry.split(',')).map((entry) => entry.trim()).filter((entry) => entry !== '');
  for (const glob of list) {
    if (!/^[a-z0-9*?-]+$/.test(glob)) throw new CliError(`${flag} takes case ids and globs of them (such as snapshot-* or *clone*), not "${glob}"`);
  }
  return list;
}

/** Parses `vcts run` flags; a CliError (exit 2) names what is wrong. */
export function parseRunOptions(args: string[]): RunOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        provider: { type: 'string' },
        'runtime-url': { type: 'string' },
        'token-file': { type: 'string' },
        cases: { type: 'string', multiple: true },
        exclude: { type: 'string', multiple: true },
        destructive: { type: 'boolean' },
        'foreign-vm': { type: 'string' },
        template: { type: 'string' },
        network: { type: 'string' },
        datastore: { type: 'string' },
        linked: { type: 'boolean' },
        cpus: { type: 'string' },
        memory: { type: 'string' },
        'root-disk': { type: 'string' },
        prefix: { type: 'string' },
        vmid: { type: 'string' },
        'migration-dir': { type: 'string' },
        'image-url': { type: 'string' },
        iso: { type: 'string' },
        checksum: { type: 'string' },
        format: { type: 'string', short: 'o' },
        output: { type: 'string' },
        timeout: { type: 'string' },
      },
    });
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message.split('\n')[0] ?? 'bad arguments' : 'bad arguments');
  }
  const values = parsed.values;
  if (values.help) return 'help';

  const url = values['runtime-url'];
  const tokenFile = values['token-file'];
  let target: TargetChoice;
  if (values.provider !== undefined) {
    if (url !== undefined || tokenFile !== undefined) throw new CliError('--provider and --runtime-url exclude each other');
    target = { kind: 'provider', provider: oneOf('--provider', values.provider, PROVIDERS) };
  } else if (url !== undefined) {
    if (tokenFile === undefined) throw new CliError('--runtime-url needs --token-file (the runtime never serves without a token)');
    target = { kind: 'runtime', url, tokenFile };
  } else {
    throw new CliError('say what to check: --provider proxmox|vsphere|libvirt|simulator, or --runtime-url URL --token-file FILE');
  }
  if (tokenFile !== undefined && url === undefined) throw new CliError('--token-file goes with --runtime-url');

  const prefix = values.prefix ?? `vcts-${randomBytes(3).toString('hex')}-`;
  if (!PREFIX.test(prefix)) throw new CliError(`--prefix must be lowercase letters, digits and '-', start with a letter, end with '-' and have at most 32 characters, not "${prefix}"`);
  const timeout = values.timeout ?? DEFAULT_TIMEOUT;
  const timeoutMs = parseDuration(timeout);
  if (timeoutMs === undefined || timeoutMs < 1000 || timeoutMs > 86_400_000) throw new CliError(`--timeout must be a duration from 1s to 24h, such as 90s or 10m, not "${timeout}"`);
  const cases = globs('--cases', values.cases);
  const exclude = globs('--exclude', values.exclude);
  for (const [flag, value] of [['--template', values.template], ['--network', values.network], ['--datastore', values.datastore], ['--foreign-vm', values['foreign-vm']]] as const) {
    if (value !== undefined && (value.trim() === '' || /[\x00-\x1f\x7f]/.test(value))) throw new CliError(`${flag} must be a name, not "${value.replace(/[\x00-\x1f\x7f]/g, '?')}"`);
  }

  const options: RunOptions = {
    target,
    cases,
    exclude,
    destructive: values.destructive ?? false,
    linked: values.linked ?? false,
    cpus: values.cpus === undefined ? 2 : positiveInteger('--cpus', values.cpus, 64),
    memoryBytes: values.memory === undefined ? 2 * GiB : bytes('--memory', values.memory),
    prefix,
    requestedId: values.vmid === undefined ? randomInt(REQUESTED_ID_RANGE[0], REQUESTED_ID_RANGE[1]) : positiveInteger('--vmid', values.vmid, 999_999_999),
    format: values.format === undefined ? 'table' : oneOf('-o', values.format, REPORT_FORMATS),
    timeoutMs,
  };
  if (values['foreign-vm'] !== undefined) options.foreignVM = values['foreign-vm'];
  if (values.template !== undefined) options.template = values.template;
  if (values.network !== undefined) options.network = values.network;
  if (values.datastore !== undefined) options.datastore = values.datastore;
  if (values['root-disk'] !== undefined) options.rootDiskBytes = bytes('--root-disk', values['root-disk']);
  if (values['migration-dir'] !== undefined) options.migrationDir = values['migration-dir'];
  const checksum = values.checksum;
  if (checksum !== undefined && !/^(sha256:[0-9a-fA-F]{64}|sha512:[0-9a-fA-F]{128})$/.test(checksum)) {
    throw new CliError('--checksum must be sha256:<64 hex digits> or sha512:<128 hex digits>');
  }
  if (checksum !== undefined && values['image-url'] === undefined && values.iso === undefined) throw new CliError('--checksum goes with --image-url or --iso');
  const verified = checksum === undefined ? {} : { checksum };
  const imageURL = values['image-url'];
  if (imageURL !== undefined) {
    if (!/^https?:\/\/\S+$/.test(imageURL)) throw new CliError('--image-url must be an http(s) URL');
    options.imageURL = { url: imageURL, ...verified };
  }
  const iso = values.iso;
  if (iso !== undefined) {
    if (iso.trim() === '' || /[\x00-\x1f\x7f]/.test(iso)) throw new CliError('--iso must be an ISO the hypervisor has (PVE local:iso/x.iso, a libvirt path) or an http(s) URL');
    options.iso = /^https?:\/\//.test(iso) ? { url: iso, ...(imageURL === undefined ? verified : {}) } : { ref: iso };
  }
  if (values.output !== undefined) options.output = values.output;
  return options;
}

/** Whether a case id matches one of the globs (`*` any run of characters, `?` one). */
function matchesAny(id: string, list: readonly string[]): boolean {
  return list.some((glob) => new RegExp(`^${glob.replace(/[*?]/g, (wild) => (wild === '*' ? '.*' : '.'))}$`).test(id));
}

/** Whether the case is chosen: matched by --cases (or no --cases), not matched by --exclude. */
export function caseSelected(id: string, options: Pick<RunOptions, 'cases' | 'exclude'>): boolean {
  return (options.cases.length === 0 || matchesAny(id, options.cases)) && !matchesAny(id, options.exclude);
}
