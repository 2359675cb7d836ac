// README.md of a new driver's skeleton: how to fill it in, in the order that gets a Provider Ready
// soonest and keeps every step safe.
import type { DriverNames } from './names.js';

/** Where the Driver conformance suite lives, for the skeleton's README and the tool's next steps. */
export const CONFORMANCE_SUITE = 'the Driver conformance suite (src/conformance/, run by `vcts`)';

export function readmeTemplate(n: DriverNames): string {
  return `# The ${n.name} driver (skeleton)

Written by \`vrtg-provider new ${n.name}\`. It compiles and does nothing: every capability is
false and every Driver method rejects with \`UnsupportedError\` naming the method and the driver.
Run against ${CONFORMANCE_SUITE}, it fails at once and
honestly (probe: Unsupported), never with a wrong answer. Fill it in one verb at a time; each step below
leaves a driver that tells the truth about what it can do.

| file | holds |
|---|---|
| \`index.ts\` | the exports and \`${n.camel}DriverFromEnv(env)\`, which a provider runtime calls |
| \`config.ts\` | the \`${n.constant}_*\` variables → \`${n.pascal}Config\` (only \`${n.constant}_ENDPOINT\` so far) |
| \`driver.ts\` | \`${n.pascal}Driver\`, wiring only, and \`${n.constant}_CAPABILITIES\` |

Add \`client.ts\` for the wire protocol alone, and one module per verb as the driver grows
(\`observe.ts\`, \`create.ts\`, \`power.ts\`, \`snapshots.ts\`, \`tasks.ts\`, \`inventory.ts\`), as
\`src/hypervisors/proxmox/\` does. A driver imports only \`src/contracts/\` and
\`src/hypervisors/common/\` (DESIGN.md §2).

## Filling it in

1. **Configuration** (\`config.ts\`): the endpoint, credentials as \`Secret\`, TLS settings. Errors
   name the variable, never a secret's value. Credentials come from \`<NAME>_FILE\` files, reread
   when the hypervisor refuses the old ones, so read them all in \`${n.camel}ConfigFromEnv\`.
2. **Client and errors** (\`client.ts\`, \`errors.ts\`): map every failure to the typed errors of
   \`src/contracts/driver.ts\`: \`NotFoundError\` only when the hypervisor says the VM does not
   exist (a VM it cannot read is \`UnreachableError\`), locks are \`BusyError\`, a request that can
   never succeed is \`InvalidSpecError\`, transport failures are \`UnreachableError\`
   (\`transportError\` in \`common/transport-errors.ts\`), and anything unclassified is the
   retryable \`HypervisorError\`. Messages reach users' conditions: no credentials, no user-data.
3. **probe, inventory**: the runtime is Ready once \`probe\` answers; \`inventory\` feeds placement.
4. **describe, findByIdentity**: read power state, hardware, disks, NICs and guest IPs, and the
   identity tag (owner UID, namespace, name) that \`create\` writes into the VM.
5. **create, delete, power, taskStatus**: write the identity tag at create time, so a lost
   answer never makes a second VM; check it before every delete, power change or reconfigure
   (\`ConflictError\` when it names another owner); start long work and answer with a task at
   once, never waiting past the caller's signal; tasks must be findable from any runtime replica.
6. **reconfigure, resizeDisk** (disks only grow), then **snapshots**, **clone**, and the disk
   moves (\`exportDisk\`, \`importDisk\`, \`deleteImportedDisk\`; \`migrationVolume\` and
   \`removeMigrationFiles\` need no hypervisor call: \`common/disk-files.ts\` has them).

## Capabilities

\`${n.constant}_CAPABILITIES\` is computed from the contract's \`CAPABILITIES\` with every flag false,
so a capability added to the contract later is off here too. Turn one on only when the driver
honours it and the conformance suite proves it:
\`export const ${n.constant}_CAPABILITIES: Capabilities = Object.freeze({ ...${n.constant}_CAPABILITIES_NONE, snapshots: true });\`.
Once several are on, write the whole table out as the other drivers do, with a comment on each
false saying why. A field whose capability is off is refused with \`UnsupportedError\` before any
hypervisor call (\`unsupportedSettings(spec, this.type, this.capabilities)\` covers the settings
of Machines).

## Registering the type

* \`src/contracts/crds/provider.ts\`: add \`'${n.name}'\` to \`PROVIDER_TYPES\` and
  \`SERVED_PROVIDER_TYPES\`; \`npm run check\` then names every table keyed by type that needs a
  row (the image and network read orders in \`src/contracts/normalize/\`); run
  \`npm run manifests\`.
* \`src/main.ts\`: an entry in \`RUNTIME_DRIVERS\`,
  \`${n.key}: { client: '${n.pascal}', fromEnv: (env) => ${n.camel}DriverFromEnv(env) }\`, and the type
  in its usage text.

## Conformance

Write a \`ConformanceTarget\` (src/conformance/target.ts) for the Driver conformance suite, in
a tap file beside the other drivers' in test/conformance/ (\`vcts\` runs the same cases against
a real hypervisor an admin names): the driver, a create spec this hypervisor can fulfil, a way
to let time pass until a task ends and, best, a way to add a VM the driver did not create. Point
it at a fake that checks every request against the hypervisor's published API schema, or at a
real peer on loopback (DESIGN.md §9). A verb is done when its cases pass; each capability turned
on brings the cases that prove it.
`;
}
