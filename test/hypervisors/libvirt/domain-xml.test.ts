// Domain XML generation: values from the spec are escaped, our identity lives in <metadata> in our
// namespace, and what we write is what parseDomain reads back.
import { XMLParser } from 'fast-xml-parser';
import t from 'tap';
import { domainXml, metadataXml, parseDomain, parseMetadata, xmlEscape, type DomainSpec } from '../../../src/hypervisors/libvirt/domain-xml.js';

const HOSTILE = `web</name><devices><emulator>/bin/sh</emulator></devices><name>x' " & <!-- ]]>`;

function spec(overrides: Partial<DomainSpec> = {}): DomainSpec {
  return {
    uuid: '6c9b2f0e-5a43-4b8e-9d8c-2b2f0b7f1a01',
    name: 'web',
    type: 'kvm',
    memoryKiB: 2 * 1024 * 1024,
    maxMemoryKiB: 4 * 1024 * 1024,
    cpus: 2,
    maxCpus: 4,
    uefi: false,
    secureBoot: false,
    tpm: false,
    nested: false,
    disks: [
      { target: 'vda', device: 'disk', pool: 'default', volume: 'virtrigaud-u1-root.qcow2', format: 'qcow2', bus: 'virtio' },
      { target: 'sda', device: 'cdrom', pool: 'default', volume: 'virtrigaud-u1-seed.iso', format: 'raw', bus: 'sata' },
    ],
    nics: [
      { mac: '52:54:00:aa:bb:cc', source: { network: 'default' }, model: 'virtio' },
      { mac: '52:54:00:aa:bb:cd', source: { bridge: 'br0' }, vlan: 42, model: 'virtio' },
    ],
    vncListen: '127.0.0.1',
    metadata: {
      owner: { uid: 'u1', namespace: 'prod', name: 'web' },
      disks: [{ name: 'root', target: 'vda', volume: 'virtrigaud-u1-root.qcow2' }],
      nics: [{ name: 'lan', mac: '52:54:00:aa:bb:cc' }],
      seed: 'virtrigaud-u1-seed.iso',
      bases: [],
      cpuHotAdd: true,
      memoryHotAdd: true,
    },
    ...overrides,
  };
}

t.test('escaping covers text and both attribute quote styles', async (t) => {
  t.equal(xmlEscape(`<a href='x' title="y">&</a>`), '&lt;a href=&apos;x&apos; title=&quot;y&quot;&gt;&amp;&lt;/a&gt;');
  t.equal(xmlEscape('a\u0001b'), 'ab', 'control characters XML cannot carry are dropped');
});

t.test('a hostile name and owner stay data: one <name>, no injected devices', async (t) => {
  const xml = domainXml(spec({ name: HOSTILE, metadata: { ...spec().metadata, owner: { uid: 'u1', namespace: `ns'"<>&`, name: HOSTILE } } }));
  const tree = new XMLParser({ ignoreAttributes: false }).parse(xml) as { domain: { name: string; devices: Record<string, unknown> } };
  t.equal(tree.domain.name, HOSTILE, 'a single name element holding the whole text');
  t.notOk('emulator' in tree.domain.devices, 'no emulator element smuggled in');
  const parsed = parseDomain(xml);
  t.equal(parsed.name, HOSTILE, 'the name reads back exactly');
  t.same(parsed.metadata?.owner, { uid: 'u1', namespace: `ns'"<>&`, name: HOSTILE });
});

t.test('what is written reads back', async (t) => {
  const parsed = parseDomain(domainXml(spec()));
  t.match(parsed, {
    uuid: '6c9b2f0e-5a43-4b8e-9d8c-2b2f0b7f1a01',
    type: 'kvm',
    cpus: 2,
    maxCpus: 4,
    memoryKiB: 2 * 1024 * 1024,
    maxMemoryKiB: 4 * 1024 * 1024,
    uefi: false,
    tpm: false,
    nested: false,
  });
  t.same(parsed.disks.map((disk) => [disk.target, disk.device, disk.volume]), [
    ['vda', 'disk', 'virtrigaud-u1-root.qcow2'],
    ['sda', 'cdrom', 'virtrigaud-u1-seed.iso'],
  ]);
  t.same(parsed.nics, [
    { mac: '52:54:00:aa:bb:cc', network: 'default', model: 'virtio' },
    { mac: '52:54:00:aa:bb:cd', bridge: 'br0', vlan: 42, model: 'virtio' },
  ]);
  t.same(parsed.metadata, spec().metadata);
});

t.test('the hardware switches: type qemu, nested, UEFI with secure boot, TPM, machine', async (t) => {
  const tcg = domainXml(spec({ type: 'qemu' }));
  t.match(tcg, "<domain type='qemu'>");
  t.match(tcg, "<model fallback='allow'>qemu64</model>", 'a named CPU model under TCG');
  t.notMatch(domainXml(spec()), 'host-passthrough', 'no passthrough without nested virtualization');
  const full = parseDomain(domainXml(spec({ nested: true, uefi: true, secureBoot: true, tpm: true, machine: 'q35' })));
  t.match(full, { nested: true, uefi: true, secureBoot: true, tpm: true, machine: 'q35' });
  t.match(domainXml(spec({ uefi: true, secureBoot: true })), "<smm state='on'/>", 'secure boot needs SMM');
});

t.test('VNC listens where configured; the guest agent channel is there', async (t) => {
  const xml = domainXml(spec({ vncListen: '10.0.0.5' }));
  t.match(xml, "<graphics type='vnc' port='-1' autoport='yes' listen='10.0.0.5'>");
  t.match(xml, "<target type='virtio' name='org.qemu.guest_agent.0'/>");
});

t.test('metadata: ours by namespace only; virsh metadata output (namespace stripped) parses', async (t) => {
  const element = metadataXml(spec().metadata);
  t.match(element, "xmlns:virtrigaud='https://virtrigaud.io/xmlns/libvirt/v1'");
  const foreign = parseDomain(domainXml(spec()).replace('https://virtrigaud.io/xmlns/libvirt/v1', 'https://example.com/other'));
  t.equal(foreign.metadata, undefined, 'the same element in another namespace is not our tag');
  const printed = `<vm>\n  <owner uid="u2" namespace="n" name="m"/>\n  <disk name="root" target="vda" volume="v"/>\n  <features cpuHotAdd="false" memoryHotAdd="false"/>\n</vm>\n`;
  t.match(parseMetadata(printed), { owner: { uid: 'u2', namespace: 'n', name: 'm' }, disks: [{ name: 'root', target: 'vda', volume: 'v' }], bases: [] });
  t.equal(parseMetadata(''), undefined);
  t.throws(() => parseMetadata('<vm><owner/></vm>'), /names no owner/, 'our element without an owner is unreadable, not foreign');
});

t.test('a pending creation round-trips, and the bare form is what virsh metadata --set takes', async (t) => {
  const pending = { origin: 'clone' as const, source: '0b0c0d0e-0000-4000-8000-000000000001', copies: [{ volume: 'virtrigaud-u1-root.qcow2', from: "/pool/it's.qcow2", capacityBytes: 1073741824 }] };
  const metadata = { ...spec().metadata, pending };
  t.same(parseDomain(domainXml(spec({ metadata }))).metadata?.pending, pending);
  const bare = metadataXml(metadata, true);
  t.match(bare, /^<vm><owner uid='u1'/);
  t.notMatch(bare, /virtrigaud:|xmlns/, 'libvirt adds the namespace itself');
  t.same(parseMetadata(bare)?.pending, pending);
  t.equal(parseDomain(domainXml(spec())).metadata?.pending, undefined, 'a complete VM has none');
});

t.test('live XML: the VNC port and the current vCPUs and memory', async (t) => {
  const live = domainXml(spec()).replace("port='-1' autoport='yes'", "port='5901' autoport='yes'");
  t.match(parseDomain(live).vnc, { port: 5901, listen: '127.0.0.1' });
  t.equal(parseDomain(domainXml(spec())).vnc, undefined, 'no port before it runs');
});

t.test('user tags live in our metadata beside the identity and read back sorted, from dumpxml and from virsh metadata', async (t) => {
  const metadata = { ...spec().metadata, tags: ['env-prod', 'team.web'] };
  const xml = domainXml(spec({ metadata }));
  t.match(xml, "<virtrigaud:tag name='env-prod'/><virtrigaud:tag name='team.web'/>");
  t.same(parseDomain(xml).metadata, metadata, 'identity and tags together');
  t.same(parseDomain(domainXml(spec({ metadata: { ...metadata, tags: ['solo'] } }))).metadata?.tags, ['solo'], 'a single tag is still a list');
  const upstream = ['Owner=team/web@corp', 'env:prod'];
  t.same(parseDomain(domainXml(spec({ metadata: { ...metadata, tags: upstream } }))).metadata?.tags, upstream, 'key:value style tags read back as written');
  const bare = metadataXml(metadata, true);
  t.match(bare, "<tag name='env-prod'/><tag name='team.web'/>", 'the form virsh metadata --set takes');
  t.same(parseMetadata(bare)?.tags, ['env-prod', 'team.web']);
  const printed = `<vm>\n  <owner uid="u2" namespace="n" name="m"/>\n  <tag name="zeta"/>\n  <tag name="alpha"/>\n  <tag name="alpha"/>\n</vm>\n`;
  t.same(parseMetadata(printed)?.tags, ['alpha', 'zeta'], 'sorted, without duplicates');
  t.equal(parseDomain(domainXml(spec())).metadata?.tags, undefined, 'none written, none read');
  t.same(parseDomain(xml).nics[1]?.vlan, 42, "a NIC's <vlan><tag> is not mistaken for ours");
});

t.test('CPU shares become <cputune><shares> and read back; no cputune without them', async (t) => {
  const xml = domainXml(spec({ cpuShares: 2048 }));
  t.match(xml, '<cputune><shares>2048</shares></cputune>');
  t.equal(parseDomain(xml).cpuShares, 2048);
  t.notMatch(domainXml(spec()), 'cputune');
  t.equal(parseDomain(domainXml(spec())).cpuShares, undefined);
});

t.test('an Ignition config is a fw_cfg file entry named opt/com.coreos/config; the metadata names its volume', async (t) => {
  const file = "/var/lib/pool/virtrigaud-u1-ignition.json'/><entry name='x";
  const metadata = { ...spec().metadata, ignition: 'virtrigaud-u1-ignition.json' };
  const xml = domainXml(spec({ ignitionFile: file, metadata }));
  t.match(xml, "<sysinfo type='fwcfg'><entry name='opt/com.coreos/config' file='/var/lib/pool/virtrigaud-u1-ignition.json&apos;/&gt;&lt;entry name=&apos;x'/></sysinfo>");
  const parsed = parseDomain(xml);
  t.equal(parsed.ignitionFile, file, 'one entry, the whole path');
  t.equal(parsed.metadata?.ignition, 'virtrigaud-u1-ignition.json');
  t.equal(parseMetadata(metadataXml(metadata, true))?.ignition, 'virtrigaud-u1-ignition.json');
  t.notMatch(domainXml(spec()), 'sysinfo');
  const other = "<domain type='kvm'><name>x</name><sysinfo type='smbios'><bios><entry name='vendor'>v</entry></bios></sysinfo><sysinfo type='fwcfg'><entry name='opt/com.example/x' file='/a'/><entry name='opt/com.coreos/config' file='/b'/></sysinfo></domain>";
  t.equal(parseDomain(other).ignitionFile, '/b', 'found among other sysinfo blocks and entries');
});

t.test('an installer ISO is a raw SATA CD-ROM booted first, then the first disk; no <os> boot device beside them', async (t) => {
  const xml = domainXml(spec({ installer: { file: "/var/lib/isos/debian's.iso", target: 'sdb' } }));
  t.match(xml, "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/var/lib/isos/debian&apos;s.iso'/><target dev='sdb' bus='sata'/><readonly/><boot order='1'/></disk>");
  t.notMatch(xml, '<boot dev=', 'libvirt refuses per-device boot orders beside <os><boot dev>');
  const parsed = parseDomain(xml);
  t.same(
    parsed.disks.map((disk) => [disk.target, disk.device, disk.file ?? disk.volume, disk.bootOrder]),
    [
      ['sdb', 'cdrom', "/var/lib/isos/debian's.iso", 1],
      ['vda', 'disk', 'virtrigaud-u1-root.qcow2', 2],
      ['sda', 'cdrom', 'virtrigaud-u1-seed.iso', undefined],
    ],
    'the seed ISO is not bootable',
  );
  t.match(domainXml(spec()), "<boot dev='hd'/></os>", 'without an installer: the disk');
});
