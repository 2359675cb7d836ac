#!/usr/bin/env node
// vcts: the project's Driver conformance suite (src/conformance) as a tool an admin runs against
// a real hypervisor before trusting the operator with it. It makes only VMs of its own (a run
// prefix, the identity of the run), removes them after every case, on exit and on Ctrl-C, and
// never touches a VM it did not create unless --destructive says so.
import { writeFile } from 'node:fs/promises';
import { CONFORMANCE_CASES } from '../conformance/index.js';
import type { Env } from '../hypervisors/common/env.js';
import type { SimulatedHypervisor } from '../hypervisors/simulator/index.js';
import { CliError, EXIT, isEntryPoint, processIo, runMain, table, type Io } from './common.js';
import { connect, runSpec } from './vcts/connect.js';
import { caseSelected, parseRunOptions } from './vcts/options.js';
import { formatReport } from './vcts/report.js';
import { processSignals, runConformance, type SignalSource } from './vcts/runner.js';

export const HELP = `usage: vcts run (--provider proxmox|vsphere|libvirt|simulator | --runtime-url URL --token-file FILE) [options]
       vcts list        the cases, their capability and whether they are destructive

Runs VirtRigaud's Driver conformance cases against a hypervisor, so you can check your vCenter,
Proxmox VE or libvirt host before trusting the operator with it. Each case is reported verified,
unsupported (the capability is off, and the driver refused it as it must), skipped, or failed
with the reason.

What to check:
  --provider TYPE          the driver a provider runtime of this type would build, from the same
                           environment variables (PVE_*, VSPHERE_*, LIBVIRT_*, their _FILE forms;
                           see the README); simulator: an in-memory hypervisor
  --runtime-url URL        a running provider runtime (http://virtrigaud-provider-<name>.<ns>:9090)
  --token-file FILE        the runtime's bearer token (its Secret's key); never printed

What the run's VMs are made from:
  --template NAME          the template (libvirt: the base volume) every VM is cloned from;
                           required except for the simulator
  --network NAME           the network of the VMs' one NIC (default: the driver maps "lan")
  --datastore NAME         where their disks go (default: the driver's, e.g. PVE_DEFAULT_STORAGE)
  --linked                 linked clones of the template instead of full copies
  --cpus N                 CPUs of each VM (default 2); --memory SIZE (default 2Gi);
  --root-disk SIZE         the root disk's size (default: the template's)
  --vmid N                 the VM ID the explicitId case asks for (default: a random free-looking
                           one from 900000000 up)
  --migration-dir DIR      the driver's MIGRATION_DIR as seen from here; without it (or
                           MIGRATION_DIR) the disk-export and migration-volume cases are skipped
  --image-url URL          a disk image the hypervisor can download (image-import case; skipped
                           without it where the driver claims imageImport)
  --iso REF|URL            an installer ISO the hypervisor has (PVE local:iso/x.iso, a libvirt
                           path) or can download (iso-install case, skipped without it likewise)
  --checksum DIGEST        sha256:<hex> or sha512:<hex> of --image-url (else of --iso's URL)

Which cases:
  --cases GLOB[,GLOB]      only cases whose id matches (vcts list shows them), e.g. 'snapshot-*'
  --exclude GLOB[,GLOB]    leave these out (e.g. power, when the template's guest reports no
                           addresses)
  --destructive            also run the destructive cases. A case is destructive when it asks the
                           driver to change something the run did not create, so a broken driver
                           would damage it: today one case, foreign-vm, which asks the driver to
                           delete, power off, reconfigure and grow a VM it must refuse to touch.
                           It needs --foreign-vm ID: an existing VM without a VirtRigaud identity
                           that you can afford to lose. Every other case only creates, powers on
                           and off, snapshots, clones and deletes VMs of its own.
  --foreign-vm ID          the VM the foreign-vm case uses (its hypervisor ID: PVE VMID, vSphere
                           moref such as vm-42, libvirt UUID)

Safety: every VM is named <prefix><case key> and carries the identity {namespace: vcts, name:
<prefix…>, uid: the run's UUID with a serial}. After each case — verified, failed or timed out —
and on exit, the run looks its identities up (findByIdentity) and deletes only VMs that carry one
of them. SIGINT or SIGTERM ends the current case, cleans up, writes the report and exits 130/143;
a second signal stops the cleanup and names the run so its leftovers can be found.
  --prefix PREFIX          name prefix of the run's VMs (default vcts-<random>-; must end in -)
  --timeout DURATION       the longest one case, or the removal of one VM, may take (default 10m)

Report (progress goes to stderr):
  -o, --format FORMAT      table (default), json, yaml, or junit (one testcase per case: failed
                           as <failure>, unsupported and skipped as <skipped>)
  --output FILE            write the report to FILE; the table then still goes to stdout

Exit: 0 every case verified, unsupported or skipped; 1 a case failed or something of the run was
left behind; 2 usage; 130/143 interrupted.
`;

export interface VctsDeps {
  /** The simulator `--provider simulator` checks (tests: fast tasks, their own foreign VMs). */
  simulator?: SimulatedHypervisor;
  signals?: SignalSource;
  /** Polling of waits (default 50 ms growing to 2 s). */
  pollMs?: { first: number; max: number };
}

const PROBE_TIMEOUT_MS = 60_000;

function listCases(): string {
  return table(
    ['CASE', 'CAPABILITY', 'DESTRUCTIVE', 'BEHAVIOUR'],
    CONFORMANCE_CASES.map((entry) => [entry.id, entry.capability, entry.destructive ? 'yes' : 'no', entry.title]),
  );
}

function oneLine(error: unknown): string {
  return ((error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '').slice(0, 300);
}

async function probe(run: () => Promise<{ version: string }>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS);
    });
    return (await Promise.race([run(), timeout])).version;
  } catch (error) {
    throw new CliError(`cannot reach the hypervisor: ${oneLine(error)}`, EXIT.failed);
  } finally {
    clearTimeout(timer);
  }
}

export async function main(argv: string[], env: Env = process.env, io: Io = processIo, deps: VctsDeps = {}): Promise<number> {
  return await runMain(
    'vcts',
    async () => {
      const [command, ...rest] = argv;
      if (command === undefined) {
        io.err(HELP);
        return EXIT.usage;
      }
      if (command === '--help' || command === '-h' || command === 'help') {
        io.out(HELP);
        return EXIT.ok;
      }
      if (command === 'list') {
        if (rest.length > 0) throw new CliError('vcts list takes no arguments');
        io.out(listCases());
        return EXIT.ok;
      }
      if (command !== 'run') throw new CliError(`unknown command "${command}": vcts run … or vcts list (vcts --help)`);
      const options = parseRunOptions(rest);
      if (options === 'help') {
        io.out(HELP);
        return EXIT.ok;
      }
      const cases = CONFORMANCE_CASES.filter((entry) => caseSelected(entry.id, options));
      if (cases.length === 0) throw new CliError('--cases and --exclude leave no case (vcts list shows them)');
      const connected = await connect(options, env, (line) => io.err(`vcts: ${line}\n`), deps.simulator);
      try {
        const spec = runSpec(options, connected.driver.type);
        const version = await probe(() => connected.driver.probe());
        const destructive = cases.filter((entry) => entry.destructive).length;
        io.err(
          `vcts: ${cases.length} case${cases.length === 1 ? '' : 's'} against ${connected.where}, ${connected.driver.type} ${version}; ` +
            `VMs named ${options.prefix}*, owner namespace vcts` +
            `${destructive > 0 && !options.destructive ? ` (${destructive} destructive skipped: --destructive)` : ''}\n`,
        );
        const { report, exitCode } = await runConformance({
          options,
          cases,
          connected,
          version,
          spec,
          io,
          signals: deps.signals ?? processSignals,
          pollMs: deps.pollMs ?? { first: 50, max: 2000 },
        });
        const text = formatReport(report, options.format);
        if (options.output === undefined) {
          io.out(text);
        } else {
          if (options.format !== 'table') io.out(formatReport(report, 'table'));
          try {
            await writeFile(options.output, text);
          } catch (error) {
            throw new CliError(`cannot write --output ${options.output}: ${(error as NodeJS.ErrnoException).code ?? oneLine(error)}`, EXIT.failed);
          }
        }
        return exitCode;
      } finally {
        await connected.close();
      }
    },
    io,
  );
}

if (isEntryPoint(import.meta.url)) {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // Nothing of the run is left to wait for; a keep-alive socket of a driver must not hold the exit.
  setTimeout(() => process.exit(code), 2000).unref();
}
