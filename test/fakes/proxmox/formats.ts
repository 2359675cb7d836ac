/**
 * Named formats (`format => 'pve-...'`) that a VM driver's parameters use, with the
 * messages PVE's validators die with (pve-common JSONSchema.pm, qemu-server, pve-storage).
 * Formats not listed here are accepted: the fake cannot model every validator, and
 * refusing valid input would be worse than accepting odd input.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { FormatError } from './errors.js';
import type { FormatHash } from './schema.js';

export type StringValidator = (value: string) => void;
export interface NamedHashFormat {
  hash: FormatHash;
  /** Runs on the parsed property string (`$format_validators` in JSONSchema.pm). */
  validator?: (parsed: Record<string, string>) => void;
}
export type NamedFormat = StringValidator | NamedHashFormat;

function die(message: string): never {
  throw new FormatError(`${message}\n`);
}

function regexValidator(pattern: RegExp, message: (value: string) => string): StringValidator {
  return (value) => {
    if (!pattern.test(value)) die(message(value));
  };
}

const DNS_LABEL = '([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)';
const DNS_NAME = new RegExp(`^(${DNS_LABEL}\\.)*${DNS_LABEL}$`);
const VOLUME_ID = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/is;
export const TAG_RE = /^[a-z0-9_][a-z0-9_\-+.]*$/i;

export const CONTENT_TYPES = ['images', 'rootdir', 'vztmpl', 'iso', 'backup', 'snippets', 'import'] as const;

function isCidr(value: string, family: 4 | 6): boolean {
  const match = /^(.+)\/(\d+)$/.exec(value);
  if (!match) return false;
  const bits = Number(match[2]);
  const address = match[1] ?? '';
  return family === 4
    ? isIPv4(address) && bits > 7 && bits <= 32
    : isIPv6(address) && bits > 7 && bits <= 128;
}

/** qemu-server's `is_valid_drivename`. */
export function isValidDriveName(name: string): boolean {
  const match = /^(ide|sata|scsi|virtio)(\d+)$/.exec(name);
  if (match) {
    const max = { ide: 3, sata: 5, scsi: 30, virtio: 15 }[match[1] as 'ide' | 'sata' | 'scsi' | 'virtio'];
    const index = Number(match[2]);
    return String(index) === match[2] && index <= max;
  }
  return name === 'efidisk0' || name === 'tpmstate0';
}

const verifyBootdev: StringValidator = (dev) => {
  const special = dev.startsWith('efidisk') || dev.startsWith('tpmstate');
  if (isValidDriveName(dev) && !special) return;
  const indexed = /^(net|usb|hostpci)(\d+)$/.exec(dev);
  const limits: Record<string, number> = { net: 31, usb: 13, hostpci: 15 };
  if (indexed && Number(indexed[2]) <= (limits[indexed[1] ?? ''] ?? -1)) return;
  die(`invalid boot device '${dev}'`);
};

/** qemu-server's `parse_hotplug_features`; `1` means the default `network,disk,usb`. */
export function parseHotplug(value: string | undefined): Set<string> {
  const text = value ?? '1';
  if (text === '0') return new Set();
  const features = new Set<string>();
  for (const feature of splitList(text === '1' ? 'network,disk,usb' : text)) {
    if (!/^(network|disk|cpu|memory|usb|cloudinit)$/.test(feature)) die(`invalid hotplug feature '${feature}'`);
    features.add(feature);
  }
  return features;
}

/** PVE::Tools::split_list: `\0`-separated, or any run of `,`, `;` and whitespace. */
export function splitList(text: string): string[] {
  if (text.includes('\0')) return text.split('\0');
  return text
    .replace(/[,;]/g, ' ')
    .replace(/^\s+/, '')
    .split(/\s+/)
    .filter((item) => item !== '');
}

const volumeIdValidator: StringValidator = (value) => {
  if (!VOLUME_ID.test(value)) die(`unable to parse volume ID '${value}'`);
};

const volumeOrAbsolutePath: StringValidator = (value) => {
  if (value.startsWith('/')) return;
  volumeIdValidator(value);
};

const ipconfigHash: FormatHash = {
  ip: { type: 'string', format: 'pve-ipv4-config', optional: 1 },
  gw: { type: 'string', format: 'ipv4', optional: 1 },
  ip6: { type: 'string', format: 'pve-ipv6-config', optional: 1 },
  gw6: { type: 'string', format: 'ipv6', optional: 1 },
};

export const NAMED_FORMATS: ReadonlyMap<string, NamedFormat> = new Map<string, NamedFormat>([
  ['string', () => undefined],
  ['urlencoded', regexValidator(/^[-%a-zA-Z0-9_.!~*'()]*$/, (v) => `invalid urlencoded string: ${v}`)],
  ['pve-configid', regexValidator(/^[a-z][a-z0-9_-]+$/i, (v) => `invalid configuration ID '${v}'`)],
  ['pve-storage-id', regexValidator(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, (v) => `storage ID '${v}' contains illegal characters`)],
  ['pve-bridge-id', regexValidator(/^[-_.\w\d]+$/, (v) => `invalid bridge ID '${v}'`)],
  ['pve-vmid', regexValidator(/^[1-9][0-9]{2,8}$/, () => 'value does not look like a valid VM ID')],
  ['pve-node', regexValidator(/^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$/, () => 'value does not look like a valid node name')],
  [
    'mac-addr',
    regexValidator(/^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$/i, () => 'value does not look like a valid unicast MAC address'),
  ],
  ['ipv4', (v) => (isIPv4(v) ? undefined : die('value does not look like a valid IPv4 address'))],
  ['ipv6', (v) => (isIPv6(v) ? undefined : die('value does not look like a valid IPv6 address'))],
  ['ip', (v) => (isIPv4(v) || isIPv6(v) ? undefined : die('value does not look like a valid IP address'))],
  ['CIDRv4', (v) => (isCidr(v, 4) ? undefined : die('value does not look like a valid IPv4 CIDR network'))],
  ['CIDRv6', (v) => (isCidr(v, 6) ? undefined : die('value does not look like a valid IPv6 CIDR network'))],
  ['CIDR', (v) => (isCidr(v, 4) || isCidr(v, 6) ? undefined : die('value does not look like a valid CIDR network'))],
  [
    'pve-ipv4-config',
    (v) =>
      /^(?:dhcp|manual)$/.test(v) || isCidr(v, 4)
        ? undefined
        : die('value does not look like a valid ipv4 network configuration'),
  ],
  [
    'pve-ipv6-config',
    (v) =>
      /^(?:auto|dhcp|manual)$/.test(v) || isCidr(v, 6)
        ? undefined
        : die('value does not look like a valid ipv6 network configuration'),
  ],
  ['dns-name', regexValidator(DNS_NAME, () => 'value does not look like a valid DNS name')],
  [
    'address',
    (v) => (isIPv4(v) || isIPv6(v) || DNS_NAME.test(v) ? undefined : die(`value does not look like a valid address: ${v}`)),
  ],
  ['disk-size', regexValidator(/^\d+(\.\d+)?[KMGT]?$/, (v) => `value does not look like a valid disk size: ${v}`)],
  ['pve-tag', regexValidator(TAG_RE, () => 'invalid characters in tag')],
  [
    'pve-startup-order',
    (v) => {
      const parts = v.split(',').filter((part) => !/^\s*$/.test(part));
      if (v === '' || !parts.every((part) => /^(order=)?\d+$|^up=\d+$|^down=\d+$/.test(part))) {
        die('unable to parse startup options');
      }
    },
  ],
  ['pve-task-status-type', regexValidator(/^(ok|error|warning|unknown)$/i, (v) => `invalid status '${v}'`)],
  ['pve-iface', regexValidator(/^[a-z][a-z0-9_]{1,20}([:.]\d+)?$/i, (v) => `invalid network interface name '${v}'`)],
  ['pve-volume-id', volumeIdValidator],
  ['pve-volume-id-or-absolute-path', volumeOrAbsolutePath],
  ['pve-volume-id-or-qm-path', (v) => (v === 'none' || v === 'cdrom' ? undefined : volumeOrAbsolutePath(v))],
  ['pve-hotplug-features', (v) => void parseHotplug(v)],
  ['pve-qm-bootdisk', (v) => (isValidDriveName(v) ? undefined : die(`invalid boot disk '${v}'`))],
  ['pve-qm-bootdev', verifyBootdev],
  [
    'pve-storage-content',
    (v) => ((CONTENT_TYPES as readonly string[]).includes(v) ? undefined : die(`invalid content type '${v}'`)),
  ],
  ['pve-poolid', regexValidator(/^[A-Za-z0-9_\-.]+$/, (v) => `invalid pool ID '${v}'`)],
  ['pve-realm', regexValidator(/^[A-Za-z][A-Za-z0-9.\-_]+$/, (v) => `value '${v}' does not look like a valid realm`)],
  [
    'pve-userid',
    regexValidator(/^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$/, (v) => `value '${v}' does not look like a valid user name`),
  ],
  [
    'pve-qm-ipconfig',
    {
      hash: ipconfigHash,
      validator: (parsed) => {
        if (parsed['gw'] !== undefined && parsed['ip'] === undefined) {
          die('gateway specified without specifying an IP address');
        }
        if (parsed['gw'] !== undefined && parsed['ip'] === 'dhcp') die('gateway specified together with DHCP');
        if (parsed['gw6'] !== undefined && parsed['ip6'] === undefined) {
          die('gateway specified without specifying an IPv6 address');
        }
        if (parsed['gw6'] !== undefined && !isCidr(parsed['ip6'] ?? '', 6)) {
          die('gateway specified together with DHCP');
        }
      },
    },
  ],
  [
    'pve-qm-boot',
    {
      hash: {
        legacy: { type: 'string', optional: 1, default_key: 1, pattern: '[acdn]{1,4}' },
        order: { type: 'string', optional: 1, format: 'pve-qm-bootdev-list' },
      },
    },
  ],
  [
    'pve-qm-cicustom',
    {
      hash: {
        meta: { type: 'string', optional: 1, format: 'pve-volume-id' },
        network: { type: 'string', optional: 1, format: 'pve-volume-id' },
        user: { type: 'string', optional: 1, format: 'pve-volume-id' },
        vendor: { type: 'string', optional: 1, format: 'pve-volume-id' },
      },
    },
  ],
  [
    'pve-vm-cpu-conf',
    {
      hash: {
        cputype: { type: 'string', optional: 1, default_key: 1 },
        flags: { type: 'string', optional: 1, pattern: '(?:[+-][a-zA-Z0-9\\-_\\.]+;?)*' },
        hidden: { type: 'boolean', optional: 1 },
        'hv-vendor-id': { type: 'string', optional: 1, pattern: '[a-zA-Z0-9]{1,12}' },
        'phys-bits': { type: 'string', optional: 1 },
        'guest-phys-bits': { type: 'integer', optional: 1, minimum: 32, maximum: 64 },
        'reported-model': { type: 'string', optional: 1 },
      },
    },
  ],
]);
