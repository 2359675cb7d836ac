// Cloud-init on PVE (qemu-server Cloudinit.pm, NOTES §8). PVE generates the user-data itself from
// a few config keys (ciuser, cipassword, sshkeys, ciupgrade; hostname from the VM name), so a
// `#cloud-config` that says no more than those is carried over key by key. Anything beyond them
// (packages, runcmd, write_files, …) needs the raw document as a snippet (`cicustom=user=…`),
// and PVE's API cannot upload snippets: we write the file into a directory the snippets storage
// serves, or refuse naming the keys and the setting.
//
// Meta-data is PVE's own too (instance-id: a hash of the generated user-data and network config)
// unless `cicustom` names a `meta=` snippet: the user's meta-data goes into one, the same way.

import { randomUUID } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { InvalidSpecError, UnsupportedError, type CreateSpec } from '../../contracts/driver.js';
import { composeMetaData } from '../common/metadata.js';
import type { ProxmoxConfig } from './config.js';
import { isRow, parsePropertyString, str, type Row } from './values.js';

/** What the user-data becomes: PVE config keys, and the keys only raw user-data can carry. */
export interface CloudInitPlan {
  ciuser?: string;
  cipassword?: string;
  sshKeys: string[];
  upgrade: boolean;
  nameservers: string[];
  searchdomains: string[];
  /** User-data keys PVE cannot generate; non-empty means the raw document must be used. */
  rawKeys: string[];
}

const USER_KEYS = new Set(['name', 'ssh_authorized_keys', 'ssh-authorized-keys', 'plain_text_passwd', 'passwd']);

function stringList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value;
  return undefined;
}

/**
 * Reads `userData` without ever quoting it back: a parse failure says where, not what, because
 * user-data may come from a Secret.
 */
export function planCloudInit(userData: string | undefined, vmName: string): CloudInitPlan {
  const plan: CloudInitPlan = { sshKeys: [], upgrade: false, nameservers: [], searchdomains: [], rawKeys: [] };
  if (userData === undefined) return plan;
  if (!/^\s*#cloud-config\b/.test(userData.replace(/^\uFEFF/, ''))) {
    plan.rawKeys.push('(user-data that is not #cloud-config)');
    return plan;
  }
  let document: unknown;
  try {
    document = parse(userData, { prettyErrors: false });
  } catch {
    throw new InvalidSpecError('cloud-init user-data is not valid YAML');
  }
  if (document === null || document === undefined) return plan;
  if (!isRow(document)) throw new InvalidSpecError('cloud-init user-data must be a YAML mapping');

  const raw = (key: string): void => {
    if (!plan.rawKeys.includes(key)) plan.rawKeys.push(key);
  };
  const setUser = (name: unknown, key: string): void => {
    if (typeof name !== 'string' || (plan.ciuser !== undefined && plan.ciuser !== name)) raw(key);
    else plan.ciuser = name;
  };
  const setPassword = (password: unknown, key: string): void => {
    if (typeof password !== 'string' || (plan.cipassword !== undefined && plan.cipassword !== password)) raw(key);
    else plan.cipassword = password;
  };
  const addKeys = (keys: unknown, key: string): void => {
    const list = stringList(keys);
    if (list === undefined) raw(key);
    else for (const sshKey of list) if (!plan.sshKeys.includes(sshKey.trim())) plan.sshKeys.push(sshKey.trim());
  };

  for (const [key, value] of Object.entries(document)) {
    switch (key) {
      case 'hostname':
        // PVE names the guest after the VM; another hostname needs the raw document.
        if (value !== vmName) raw(key);
        break;
      case 'manage_etc_hosts':
        if (value !== true) raw(key);
        break;
      case 'user':
        if (isRow(value) && Object.keys(value).every((field) => field === 'name')) setUser(value['name'], key);
        else setUser(value, key);
        break;
      case 'password':
        setPassword(value, key);
        break;
      case 'chpasswd':
        // PVE writes `chpasswd: {expire: False}` with every password.
        if (!isRow(value) || Object.entries(value).some(([field, setting]) => field !== 'expire' || setting !== false)) raw(key);
        break;
      case 'ssh_authorized_keys':
        addKeys(value, key);
        break;
      case 'users':
        planUsers(value, { raw, setUser, setPassword, addKeys });
        break;
      case 'package_upgrade':
        if (typeof value === 'boolean') plan.upgrade = value;
        else raw(key);
        break;
      case 'manage_resolv_conf':
        if (value !== true) raw(key);
        break;
      case 'resolv_conf':
        planResolvConf(value, plan, raw);
        break;
      default:
        raw(key);
    }
  }
  return plan;
}

interface UserSetters {
  raw: (key: string) => void;
  setUser: (name: unknown, key: string) => void;
  setPassword: (password: unknown, key: string) => void;
  addKeys: (keys: unknown, key: string) => void;
}

// PVE's `ciuser` renames the distribution's default user (cloud-init `user:`), so one user entry
// with a name, keys and a password maps onto it; groups, sudo rules or a second user do not.
function planUsers(value: unknown, { raw, setUser, setPassword, addKeys }: UserSetters): void {
  if (!Array.isArray(value)) return raw('users');
  const entries = value.filter((entry) => entry !== 'default');
  if (entries.length > 1) return raw('users');
  const entry: unknown = entries[0];
  if (entry === undefined) return;
  if (!isRow(entry)) return raw('users');
  for (const field of Object.keys(entry)) if (!USER_KEYS.has(field)) raw(`users[0].${field}`);
  setUser(entry['name'], 'users[0].name');
  for (const field of ['ssh_authorized_keys', 'ssh-authorized-keys']) if (entry[field] !== undefined) addKeys(entry[field], `users[0].${field}`);
  for (const field of ['plain_text_passwd', 'passwd']) if (entry[field] !== undefined) setPassword(entry[field], `users[0].${field}`);
}

function planResolvConf(value: unknown, plan: CloudInitPlan, raw: (key: string) => void): void {
  if (!isRow(value)) return raw('resolv_conf');
  for (const [field, setting] of Object.entries(value)) {
    const list = stringList(setting);
    if (field === 'nameservers' && list !== undefined) plan.nameservers.push(...list);
    else if (field === 'searchdomains' && list !== undefined) plan.searchdomains.push(...list);
    else raw(`resolv_conf.${field}`);
  }
}

/** Refuses raw user-data when no snippets storage is configured; the message names keys only. */
export function requireSnippets(plan: CloudInitPlan, config: ProxmoxConfig): void {
  if (plan.rawKeys.length === 0 || config.snippets !== undefined) return;
  throw new UnsupportedError(
    `cloud-init user-data ${plan.rawKeys.join(', ')} needs the raw user-data document, which PVE's API cannot upload: ` +
      'set PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR to a snippets storage this provider can write to, ' +
      'or keep to hostname, users/user, password, ssh_authorized_keys, package_upgrade and resolv_conf',
  );
}

/** Refuses meta-data when no snippets storage is configured: PVE generates meta-data itself otherwise. */
export function requireMetaDataSnippets(metaData: string | undefined, config: ProxmoxConfig): void {
  if (metaData === undefined || config.snippets !== undefined) return;
  throw new UnsupportedError(
    "cloud-init meta-data needs a meta-data snippet, which PVE's API cannot upload: " +
      'set PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR to a snippets storage this provider can write to',
  );
}

/** The guest's hostname as PVE derives it from the VM name (get_hostname_fqdn, qemu-server Cloudinit.pm). */
export function guestHostname(vmName: string): string {
  return vmName.split('.')[0] ?? vmName;
}

/**
 * The meta-data document for the owner's VM, or undefined without user meta-data. Its instance-id
 * is the owner's UID: stable for the life of the VM (PVE's own changes with every cloud-init
 * setting, re-running per-instance modules), and never a clone's, which has another owner.
 */
export function metaDataDocument(spec: Pick<CreateSpec, 'name' | 'owner' | 'metaData'>): string | undefined {
  if (spec.metaData === undefined) return undefined;
  return composeMetaData({ 'instance-id': spec.owner.uid, 'local-hostname': guestHostname(spec.name) }, spec.metaData);
}

/**
 * The cloud-init format PVE writes for `config` (get_cloudinit_format): `citype`, else configdrive2
 * for Windows guests, else nocloud. Only nocloud reads a YAML meta-data file.
 */
export function cloudInitFormat(config: Row): string {
  const citype = str(config['citype']);
  if (citype !== undefined && citype !== '') return citype;
  return /^w/.test(str(config['ostype']) ?? '') ? 'configdrive2' : 'nocloud';
}

/** Refuses meta-data for a VM whose cloud-init drive is not NoCloud; `what` names the VM or template. */
export function requireNoCloud(metaData: string | undefined, config: Row, what: string): void {
  if (metaData === undefined) return;
  const format = cloudInitFormat(config);
  if (format !== 'nocloud') {
    throw new InvalidSpecError(`cloud-init meta-data is YAML for the NoCloud format; ${what} uses '${format}' (citype/ostype)`);
  }
}

/**
 * `sshkeys` has PVE format `urlencoded` (`^[-%a-zA-Z0-9_.!~*'()]*$`): the server uri_unescapes it.
 * encodeURIComponent produces exactly that alphabet, as the PVE GUI does; the form body then
 * encodes the `%` again (NOTES §8: the double encoding is intended).
 */
export function encodeSshKeys(keys: readonly string[]): string {
  return encodeURIComponent(keys.join('\n'));
}

/**
 * The PVE config keys PVE generates the user section from. None with a raw user-data snippet:
 * with a custom user section PVE ignores ciuser/cipassword/sshkeys/ciupgrade.
 */
export function cloudInitParams(plan: CloudInitPlan, rawUserData: boolean): Row {
  const params: Row = {};
  if (rawUserData) return params;
  if (plan.ciuser !== undefined) params['ciuser'] = plan.ciuser;
  if (plan.cipassword !== undefined) params['cipassword'] = plan.cipassword;
  if (plan.sshKeys.length > 0) params['sshkeys'] = encodeSshKeys(plan.sshKeys);
  // ciupgrade defaults to 1 since PVE 8: a first boot would upgrade every package unasked.
  params['ciupgrade'] = plan.upgrade ? 1 : 0;
  return params;
}

/** The snippet files this driver wrote for a VM, as volume IDs on the snippets storage. */
export interface CustomFiles {
  user?: string;
  meta?: string;
}

const SECTIONS = ['user', 'meta', 'network', 'vendor'] as const;

export function snippetName(uid: string): string {
  return `${safeUid(uid)}-user.yaml`;
}

export function metaSnippetName(uid: string): string {
  return `${safeUid(uid)}-meta.yaml`;
}

function safeUid(uid: string): string {
  return uid.replace(/[^A-Za-z0-9_.-]/g, '_');
}

// A snippet this driver wrote for some owner: `<Kubernetes UID>-user.yaml` or `-meta.yaml`.
const OUR_SNIPPET = /^snippets\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(user|meta)\.yaml$/i;

function isOurSnippet(volume: string, settings: ProxmoxConfig): boolean {
  const snippets = settings.snippets;
  if (snippets === undefined || !volume.startsWith(`${snippets.storage}:`)) return false;
  return OUR_SNIPPET.test(volume.slice(snippets.storage.length + 1));
}

/**
 * The `cicustom` for the VM: our files for the sections we write; other sections as the clone
 * brought them (a template's `vendor=` snippet), except files of ours that we are not writing now.
 * Those name another owner (a VMClone copies its source's `cicustom`, whose snippets go with the
 * source and whose instance-id is the source's) or a section the spec no longer asks for.
 * Undefined: no `cicustom` at all.
 */
export function cicustomValue(existing: string | undefined, ours: CustomFiles, settings: ProxmoxConfig): string | undefined {
  const parts = new Map<string, string>();
  for (const [section, volume] of parsePropertyString(existing ?? '', 'user')) {
    if (!isOurSnippet(volume, settings)) parts.set(section, volume);
  }
  if (ours.user !== undefined) parts.set('user', ours.user);
  if (ours.meta !== undefined) parts.set('meta', ours.meta);
  const known: readonly string[] = SECTIONS;
  const ordered = [...SECTIONS.filter((section) => parts.has(section)), ...[...parts.keys()].filter((section) => !known.includes(section))];
  return ordered.length === 0 ? undefined : ordered.map((section) => `${section}=${parts.get(section) ?? ''}`).join(',');
}

/**
 * Writes the snippets a VM needs where the snippets storage serves them: the raw user-data (when
 * given) and the meta-data document (when given). Their content is never logged or quoted.
 */
export async function writeSnippets(
  config: ProxmoxConfig,
  uid: string,
  files: { userData?: string | undefined; metaData?: string | undefined },
): Promise<CustomFiles> {
  const written: CustomFiles = {};
  if (files.userData !== undefined) written.user = await writeSnippetFile(config, snippetName(uid), files.userData);
  if (files.metaData !== undefined) written.meta = await writeSnippetFile(config, metaSnippetName(uid), files.metaData);
  return written;
}

/**
 * Writes one snippet and returns its volume ID. Written to a temporary name and renamed, so PVE
 * never reads half a file. Mode 0640: PVE reads it as root (a root-squashing NFS export needs the
 * group bit), other local users must not.
 */
async function writeSnippetFile(config: ProxmoxConfig, name: string, content: string): Promise<string> {
  const snippets = config.snippets;
  if (snippets === undefined) throw new UnsupportedError('cloud-init snippets need PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR');
  const target = join(snippets.dir, name);
  const temporary = join(snippets.dir, `.${name}.${randomUUID()}.tmp`);
  try {
    await writeFile(temporary, content, { mode: 0o640 });
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    const code = isRow(error) && typeof error['code'] === 'string' ? error['code'] : 'error';
    throw new UnsupportedError(`cannot write the cloud-init snippet into PVE_SNIPPETS_DIR (${code})`);
  }
  return `${snippets.storage}:snippets/${name}`;
}

/** Removes the owner's snippets, if any; a missing file or directory is fine. */
export async function removeSnippets(config: ProxmoxConfig, uid: string): Promise<void> {
  const snippets = config.snippets;
  if (snippets === undefined) return;
  await Promise.all([snippetName(uid), metaSnippetName(uid)].map((name) => rm(join(snippets.dir, name), { force: true }).catch(() => undefined)));
}
