// The SSH transport against the real sshd that test/libvirt/setup.sh runs on 127.0.0.1: commands,
// exit codes, stdin, argument safety through the remote login shell, host-key pinning.
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import t from 'tap';
import { Secret, libvirtConfigFromEnv } from '../../../src/hypervisors/libvirt/config.js';
import { SshTransport } from '../../../src/hypervisors/libvirt/ssh.js';
import { pinnedKeys } from '../../../src/hypervisors/libvirt/known-hosts.js';
import { libvirtPeer } from '../../helpers/libvirt-peer.js';

t.test('known_hosts parsing: host patterns, ports, hashes, markers', async (t) => {
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.5]:2222').digest('base64')}`;
  const text = [
    '# comment',
    'kvm1,kvm1.example.com ssh-ed25519 KEYA',
    '[kvm1]:2222 ssh-ed25519 KEYB',
    `${hashed} ecdsa-sha2-nistp256 KEYC`,
    '*.lab,!bad.lab ssh-rsa KEYD',
    '@revoked kvm1 ssh-ed25519 KEYR',
    '@cert-authority *.lab ssh-ed25519 KEYCA',
  ].join('\n');
  t.same([...pinnedKeys(text, 'kvm1', 22).accepted], ['KEYA']);
  t.same([...pinnedKeys(text, 'kvm1', 22).revoked], ['KEYR']);
  t.same([...pinnedKeys(text, 'kvm1', 2222).accepted], ['KEYB'], 'a non-22 port needs the [host]:port form');
  t.same([...pinnedKeys(text, '10.0.0.5', 2222).accepted], ['KEYC'], 'hashed entry');
  t.same([...pinnedKeys(text, '10.0.0.5', 2222).types], ['ecdsa-sha2-nistp256']);
  t.same([...pinnedKeys(text, 'a.lab', 22).accepted], ['KEYD'], 'wildcard, CA lines ignored');
  t.same([...pinnedKeys(text, 'bad.lab', 22).accepted], [], 'negated pattern');
});

t.test('against the real sshd', async (t) => {
  const peer = await libvirtPeer(t);
  if (!peer) return;
  t.teardown(() => peer.close());
  const config = libvirtConfigFromEnv(peer.env);
  const transport = (overrides: Partial<typeof config.ssh> = {}, log: (line: string) => void = () => undefined) => {
    const instance = new SshTransport({ ...config.ssh, ...overrides }, log);
    t.teardown(() => instance.close());
    return instance;
  };

  t.test('runs commands with exit codes, stdout, stderr and stdin', async (t) => {
    const ssh = transport();
    t.match(await ssh.run(['sh', '-c', 'echo out; echo err >&2; exit 3']), { code: 3, stdout: 'out\n', stderr: 'err\n' });
    const payload = "<domain>\n  <name>a 'b' \"c\" $(d)</name>\n</domain>\n";
    t.equal((await ssh.run(['cat'], { stdin: payload })).stdout, payload, 'stdin arrives byte for byte');
  });

  t.test('hostile arguments reach the remote program unchanged and inject nothing', async (t) => {
    const ssh = transport();
    const marker = `/tmp/virtrigaud-injected-${process.pid}`;
    const hostile = [`$(touch ${marker})`, `; touch ${marker}`, `\`touch ${marker}\``, `a\ntouch ${marker}`, `' ; touch ${marker}; '`, 'spaces  and\ttabs', '"q"', '\\'];
    const result = await ssh.run(['printf', '%s\\0', ...hostile]);
    t.same(result.stdout.split('\0').slice(0, -1), hostile);
    t.equal((await ssh.run(['test', '-e', marker])).code, 1, 'no injected command ran on the host');
  });

  t.test('parallel commands share one connection within the channel bound', async (t) => {
    const ssh = transport({ maxChannels: 2 });
    const results = await Promise.all(Array.from({ length: 8 }, (_, index) => ssh.run(['sh', '-c', 'sleep 0.2; echo "$1"', 'sh', String(index)])));
    t.same(results.map((result) => result.stdout.trim()), ['0', '1', '2', '3', '4', '5', '6', '7']);
  });

  t.test('a lost connection fails the running command as Unreachable, and the next one reconnects', async (t) => {
    const ssh = transport();
    const running = ssh.run(['sleep', '5']);
    await new Promise((resolve) => setTimeout(resolve, 500));
    ssh.close();
    await t.rejects(running, { code: 'Unreachable' });
    t.equal((await ssh.run(['echo', 'back'])).stdout, 'back\n');
  });

  t.test('a command past its timeout is abandoned as Unreachable', async (t) => {
    const ssh = transport();
    await t.rejects(ssh.run(['sleep', '5'], { timeoutMs: 300 }), { code: 'Unreachable' });
  });

  t.test('an unknown host key is refused unless trust on first use is on', async (t) => {
    await t.rejects(transport({ knownHosts: '', trustOnFirstUse: false }).run(['true']), { code: 'Unauthorized', message: /unknown/ });
    const lines: string[] = [];
    const tofu = transport({ knownHosts: '', trustOnFirstUse: true }, (line) => lines.push(line));
    t.equal((await tofu.run(['true'])).code, 0);
    t.match(lines.join('\n'), /trusting 127\.0\.0\.1:\d+ on first use, host key SHA256:[A-Za-z0-9+/]+/);
  });

  t.test('a different pinned key is refused', async (t) => {
    const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), other]).toString('base64');
    const wrong = `[${config.ssh.host}]:${config.ssh.port} ssh-ed25519 ${blob}`;
    await t.rejects(transport({ knownHosts: wrong }).run(['true']), { code: 'Unauthorized', message: /does not match/ });
    // trust on first use never overrides a pinned entry
    await t.rejects(transport({ knownHosts: wrong, trustOnFirstUse: true }).run(['true']), { code: 'Unauthorized' });
  });

  t.test('password authentication logs in where the server allows it; a wrong password is Unauthorized', async (t) => {
    const login = peer.passwordLogin;
    if (!login) throw new Error('the peer has no password login (re-run test/libvirt/setup.sh)');
    const { privateKey: _unused, ...withoutKey } = config.ssh;
    const ssh = new SshTransport({ ...withoutKey, username: login.username, password: new Secret(login.password) }, () => undefined);
    t.teardown(() => ssh.close());
    t.equal((await ssh.run(['id', '-un'])).stdout.trim(), login.username);
    const wrong = new SshTransport({ ...withoutKey, username: login.username, password: new Secret('not-the-password') }, () => undefined);
    t.teardown(() => wrong.close());
    const error = await wrong.run(['true']).then(() => undefined, (caught: unknown) => caught as Error & { code?: string });
    t.equal(error?.code, 'Unauthorized');
    t.notMatch(String(error?.message), login.password);
  });

  t.test('a key the server does not accept, or one that cannot be parsed, is Unauthorized', async (t) => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
    await t.rejects(transport({ privateKey: new Secret(pem) }).run(['true']), { code: 'Unauthorized', message: /authentication as root/ });
    const garbage = '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90LWEta2V5\n-----END OPENSSH PRIVATE KEY-----\n';
    const outcome = await transport({ privateKey: new Secret(garbage) })
      .run(['true'])
      .then(() => undefined, (caught: unknown) => caught as Error & { code?: string });
    t.equal(outcome?.code, 'Unauthorized', String(outcome));
    t.notMatch(String(outcome?.message), 'bm90LWEta2V5', 'the key text is not in the message');
  });
});
