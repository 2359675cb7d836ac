// Hostile but valid values — free text the API allows (snapshot descriptions, user-data, template
// references, folder paths) full of shell, XML, form and JSON metacharacters — go through each
// driver's request builders to its real peer or schema-checking fake and come back as data: the
// same text, or a clean refusal, never an injected parameter, element or command. First the
// builders alone, with generated values from a fixed seed: the libvirt domain XML and the shell
// command line virsh runs in, the Proxmox form encoding, the vSphere SOAP envelope.
import { execFileSync } from 'node:child_process';
import { XMLParser } from 'fast-xml-parser';
import t from 'tap';
import type { Identity } from '../../src/contracts/driver.js';
import { domainXml, parseDomain, xmlEscape, type DomainSpec } from '../../src/hypervisors/libvirt/domain-xml.js';
import { commandLine } from '../../src/hypervisors/libvirt/shell.js';
import { encodeParams } from '../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv, ProxmoxDriver } from '../../src/hypervisors/proxmox/index.js';
import { el, envelope, escapeXml, optionValue } from '../../src/hypervisors/vsphere/soap.js';
import { child, parseXml } from '../../src/hypervisors/vsphere/xml.js';
import { vsphereDriverFromEnv } from '../../src/hypervisors/vsphere/index.js';
import { basicSpec, createFully } from '../conformance/driver-suite.js';
import { decodeUrlencoded } from '../fakes/proxmox/decode.js';
import { FakePve } from '../fakes/proxmox/index.js';
import { seededRandom } from '../helpers/fuzz.js';
import { prepareTemplate, requireVcsim, startVcsim } from '../helpers/vcsim.js';

const HOSTILE = [
  `it's "quoted" & <b>bold</b> ]]> <!-- x -->`,
  '$(reboot) `id` ; rm -rf / | cat /etc/shadow && echo pwned',
  'a=1&b=2;c=3%0A%3Bd=4+5 %26 #frag',
  '{"__proto__": {"x": 1}} \\u0000 \\n',
  'Zeile mit Ümlaut, 漢字, emoji 🙂 and a tab\there',
];

const SEED = Number(process.env['VIRTRIGAUD_FUZZ_SEED'] ?? 20_261_217);
const GENERATED = 300;

// Pieces that mean something to a shell, an XML parser or a form decoder, and text around them.
const PIECES = [
  '$(reboot)', '`id`', '${IFS}', '; rm -rf / #', '&&', '||', '|', '>', '<', '>>', '2>&1', '*', '?', '~', '!', '#', '\\', "'", "''", '"', '\\"',
  '<domain>', '</name>', ']]>', '<![CDATA[', '<!--', '&amp;', '&lt;', '&#x27;', '&e;', '%26', '%3B', '%0A', '+', '=', '&', ';', '%',
  ' ', '  ', '-rf', '--help', 'web', '漢字', 'ünï', '🙂', '\u202e',
];

/** The value with something visible in it: a parser that trims would read a blank one as absent. */
const visible = (value: string) => (value.trim() === '' ? `${value}x` : value);

/** Generated hostile text from the pieces; `breaks` allows tabs and newlines in it too. */
function hostileValues(seed: number, breaks: boolean): string[] {
  const random = seededRandom(seed);
  const pick = <T,>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;
  const pieces = breaks ? [...PIECES, '\n', '\t', 'a\nb'] : PIECES;
  return Array.from({ length: GENERATED }, () => Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(pieces)).join(''));
}

t.test(`libvirt domain XML keeps ${GENERATED} generated values as data in every field (seed ${SEED})`, async (t) => {
  // Attribute values leave out tabs and newlines: a conforming parser (libvirt's libxml2) turns
  // them into spaces however they are written, so none of our attributes may carry them. Our own
  // parser trims what it reads (the driver never writes edge whitespace), so read-backs compare
  // trimmed text and the writing is checked on the XML itself.
  const texts = hostileValues(SEED, true).map(visible);
  const attrs = hostileValues(SEED + 1, false).map(visible);
  const specWith = (name: string, value: string): DomainSpec => ({
    uuid: '6c9b2f0e-5a43-4b8e-9d8c-2b2f0b7f1a01',
    name,
    type: 'kvm',
    memoryKiB: 1024 * 1024,
    maxMemoryKiB: 1024 * 1024,
    cpus: 1,
    maxCpus: 1,
    machine: value,
    uefi: false,
    secureBoot: false,
    tpm: false,
    nested: false,
    disks: [{ target: value, device: 'disk', pool: value, volume: value, format: 'qcow2', bus: 'virtio' }],
    nics: [
      { mac: '52:54:00:aa:bb:cc', source: { bridge: value }, model: value },
      { mac: '52:54:00:aa:bb:cd', source: { network: value }, model: 'virtio' },
    ],
    vncListen: value,
    ignitionFile: value,
    metadata: {
      owner: { uid: value, namespace: value, name: value },
      disks: [{ name: value, target: value, volume: value }],
      nics: [{ name: value, mac: '52:54:00:aa:bb:cc' }],
      seed: value,
      tags: [value],
      bases: [value],
      cpuHotAdd: false,
      memoryHotAdd: false,
    },
  });
  const slots = (domainXml(specWith('n', 'SLOT')).match(/='SLOT'/g) ?? []).length;
  const raw = new XMLParser({ ignoreAttributes: false, parseAttributeValue: false, parseTagValue: false });
  const problems: string[] = [];
  for (let index = 0; index < GENERATED; index++) {
    const value = attrs[index] as string;
    const name = texts[index] as string;
    const xml = domainXml(specWith(name, value));
    const parsed = parseDomain(xml);
    const devices = (raw.parse(xml) as { domain: { devices: Record<string, unknown> } }).domain.devices;
    const read = value.trim();
    const found = {
      written: xml.split(`='${xmlEscape(value)}'`).length - 1 === slots && xml.includes(`<name>${xmlEscape(name)}</name>`),
      name: parsed.name === name.trim(),
      machine: parsed.machine === read,
      disk: parsed.disks.length === 1 && parsed.disks[0]?.pool === read && parsed.disks[0]?.volume === read && parsed.disks[0]?.target === read,
      nics: parsed.nics.length === 2 && parsed.nics[0]?.bridge === read && parsed.nics[0]?.model === read && parsed.nics[1]?.network === read,
      ignition: parsed.ignitionFile === read,
      owner: JSON.stringify(parsed.metadata?.owner) === JSON.stringify({ uid: read, namespace: read, name: read }),
      metadata: parsed.metadata?.seed === read && parsed.metadata.tags?.[0] === read && parsed.metadata.bases[0] === read && parsed.metadata.disks[0]?.name === read,
      // Nothing smuggled in: exactly the devices we wrote.
      devices: Object.keys(devices).sort().join(',') === 'channel,console,disk,graphics,interface,memballoon,rng,serial,video',
      attributes: ![...xml.matchAll(/='([^']*)'/g)].some((match) => /[\t\n\r]/.test(match[1] ?? '')),
    };
    const wrong = Object.entries(found).filter(([, ok]) => !ok).map(([what]) => what);
    if (wrong.length > 0) problems.push(`${JSON.stringify(name)} / ${JSON.stringify(value)}: ${wrong.join(', ')}`);
  }
  t.same(problems, [], `each value is written once per slot (${slots}), reads back, and the structure is ours`);
});

t.test(`virsh command lines keep ${GENERATED} generated arguments as one word each in a real shell (seed ${SEED})`, async (t) => {
  const names = hostileValues(SEED + 2, true);
  const descriptions = hostileValues(SEED + 3, true);
  // The command line as the driver sends it (snapshots.ts), run by sh with virsh a function that
  // prints its arguments NUL-separated: what arrives is what virsh would get.
  const lines = names.map((name, index) =>
    commandLine(['virsh', '-q', '-c', 'qemu:///system', 'snapshot-create-as', '--domain', name, '--name', name, '--description', descriptions[index] as string]),
  );
  const script = `virsh() { printf '%s\\0' "$@"; printf '\\1'; }\n${lines.join('\n')}\n`;
  const out = execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const calls = out.split('\u0001').slice(0, -1).map((call) => call.split('\0').slice(0, -1));
  t.equal(calls.length, GENERATED, 'one virsh call per command line: nothing split one, nothing started another');
  const problems = calls
    .map((argv, index) => ({ argv, index }))
    .filter(({ argv, index }) => JSON.stringify(argv) !== JSON.stringify(['-q', '-c', 'qemu:///system', 'snapshot-create-as', '--domain', names[index], '--name', names[index], '--description', descriptions[index]]))
    .map(({ argv, index }) => `${JSON.stringify(names[index])}: ${JSON.stringify(argv)}`);
  t.same(problems, [], 'every argument arrives unchanged');
});

t.test(`the Proxmox form encoding keeps ${GENERATED} generated values as one parameter each, as PVE decodes them (seed ${SEED})`, async (t) => {
  const values = hostileValues(SEED + 4, true);
  const problems: string[] = [];
  for (const [index, value] of values.entries()) {
    const list = [value, `${value}2`];
    const encoded = encodeParams({ description: value, tags: list, onboot: true, memory: 2048, [`key${value}`]: 'k' }).toString();
    const pairs = decodeUrlencoded(encoded);
    const expected = [
      { key: 'description', value },
      { key: 'tags', value: list[0] },
      { key: 'tags', value: list[1] },
      { key: 'onboot', value: '1' },
      { key: 'memory', value: '2048' },
      // PVE reads keys as latin1; only the value side is UTF-8.
      { key: Buffer.from(`key${value}`, 'utf8').toString('latin1'), value: 'k' },
    ];
    if (JSON.stringify(pairs) !== JSON.stringify(expected)) problems.push(`${index} ${JSON.stringify(value)}: ${JSON.stringify(pairs).slice(0, 200)}`);
  }
  t.same(problems, [], 'each value decodes to itself, no parameter is split or added');
});

t.test(`the vSphere SOAP envelope keeps ${GENERATED} generated values as text (seed ${SEED})`, async (t) => {
  // Carriage returns are left out: every XML parser reads a raw one as a newline (XML 1.0 §2.11).
  // The response parser trims text (vim25 answers are indented), so read-backs compare trimmed text.
  const values = hostileValues(SEED + 5, true);
  const problems: string[] = [];
  for (const [index, value] of values.entries()) {
    const xml = envelope('CreateSnapshot_Task', [
      el('name', value),
      el('description', value),
      el('spec', [optionValue('extraConfig', `guestinfo.${value}`, value), el('annotation', value)]),
    ]);
    const method = child(parseXml(xml), 'Body')?.children[0];
    const spec = child(method, 'spec');
    const option = child(spec, 'extraConfig');
    const read = value.trim();
    const ok =
      xml.split(`>${escapeXml(value)}</`).length - 1 === 4 &&
      method?.children.length === 3 &&
      child(method, 'name')?.text === read &&
      child(method, 'description')?.text === read &&
      spec?.children.length === 2 &&
      child(option, 'key')?.text === `guestinfo.${value}`.trim() &&
      child(option, 'value')?.text === read &&
      child(spec, 'annotation')?.text === read;
    if (!ok) problems.push(`${index} ${JSON.stringify(value)}`);
  }
  t.same(problems, [], 'each value is written as escaped text, reads back, and no element is added');
});

const owner = (name: string): Identity => ({ uid: `4b0e0000-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'hostile', name });

t.test('PVE: hostile snapshot descriptions round-trip through the form encoding; a hostile template name is only "not found"', async (t) => {
  const pve = await FakePve.start({ taskDurationMs: 10, bootMs: 20 });
  t.teardown(() => pve.close());
  const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: pve.url, PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' }));
  t.teardown(() => driver.close());
  const who = owner('pve');
  const target = {
    driver,
    spec: (name: string, identity: Identity) => basicSpec(name, identity),
    async waitUntil(done: () => Promise<boolean>, what: string) {
      for (let round = 0; round < 500; round++) {
        if (await done()) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`${what} not reached`);
    },
    addForeignVM: async () => '',
    close: async () => {},
  };
  // PVE's own cloud-init fields carry the value (cipassword): form-encoded, never split.
  const vm = await createFully(target, basicSpec('hostile', who, { userData: `#cloud-config\npassword: ${JSON.stringify(HOSTILE[1])}\n` }));
  for (const [index, description] of HOSTILE.entries()) {
    if (description.includes('\u0000')) continue;
    const name = `s${index}`;
    const started = await driver.snapshotCreate({ id: vm.id, owner: who }, { name, description, memory: false, quiesce: false });
    await target.waitUntil(async () => started.task === undefined || (await driver.taskStatus(started.task)).state === 'succeeded', `snapshot ${name}`);
    const listed = (await driver.snapshotList({ id: vm.id, owner: who })).find((snapshot) => snapshot.name === name);
    t.equal(listed?.description?.trim(), description.trim(), `description ${index} comes back as written`);
  }
  for (const ref of HOSTILE) {
    await t.rejects(
      driver.create(basicSpec('other', owner('other'), { image: { kind: 'template', ref, fullClone: true } })),
      { code: 'InvalidSpec' },
      'a hostile template reference is a plain refusal',
    );
  }
  t.equal(pve.requests.filter((request) => request.status === 400).length, 0, 'no request the schema refused: every value was encoded as one parameter');
});

if (requireVcsim(t)) {
  t.test('vSphere: hostile snapshot descriptions and folder paths stay XML text', async (t) => {
    const vcsim = await startVcsim(t);
    await prepareTemplate(vcsim);
    const driver = vsphereDriverFromEnv(vcsim.env);
    t.teardown(() => driver.close());
    const who = owner('vsphere');
    const target = {
      driver,
      spec: (name: string, identity: Identity) => basicSpec(name, identity),
      async waitUntil(done: () => Promise<boolean>, what: string) {
        for (let round = 0; round < 100; round++) {
          if (await done()) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        throw new Error(`${what} not reached`);
      },
      addForeignVM: async () => '',
      close: async () => {},
    };
    const vm = await createFully(target, basicSpec('hostile', who, { userData: `#cloud-config\nwrite_files:\n  - content: "${HOSTILE[0]}"\n` }));
    for (const [index, description] of HOSTILE.entries()) {
      if (description.includes('\u0000')) continue;
      const name = `s${index}`;
      await driver.snapshotCreate({ id: vm.id, owner: who }, { name, description, memory: false, quiesce: false });
      await target.waitUntil(async () => (await driver.snapshotList({ id: vm.id, owner: who })).some((snapshot) => snapshot.name === name), `snapshot ${name}`);
      const listed = (await driver.snapshotList({ id: vm.id, owner: who })).find((snapshot) => snapshot.name === name);
      t.equal(listed?.description, description, `description ${index} comes back as written`);
    }
    for (const folder of HOSTILE.slice(0, 3)) {
      await t.rejects(
        driver.create(basicSpec('placed', owner('placed'), { placement: { folder } })),
        { code: 'InvalidSpec' },
        'a hostile folder path is a plain "not found"',
      );
    }
  });
}
