// The Containerfile cannot be built here (no container engine), so its structure is the contract:
// a build stage and a small non-root runtime stage on a maintained Node LTS, installs only from the
// lockfile, nothing but dist/, production node_modules and package.json in the image, no secrets.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROOT } from './render.js';

interface Instruction {
  keyword: string;
  args: string;
  /** Index of the stage (FROM) it belongs to; -1 before the first FROM. */
  stage: number;
}

function parseContainerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    const match = /^(\w+)\s+(.*)$/s.exec(full);
    if (!match) throw new Error(`cannot parse Containerfile line: ${full}`);
    const keyword = (match[1] as string).toUpperCase();
    if (keyword === 'FROM') stage += 1;
    instructions.push({ keyword, args: (match[2] as string).trim(), stage });
  }
  return instructions;
}

const text = readFileSync(join(ROOT, 'Containerfile'), 'utf8');
const instructions = parseContainerfile(text);
const stages = instructions.filter((i) => i.keyword === 'FROM');
const finalStage = stages.length - 1;
const inFinal = instructions.filter((i) => i.stage === finalStage);
const runs = instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));

function argDefault(name: string): string | undefined {
  const arg = instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith(`${name}=`));
  return arg?.args.slice(name.length + 1).replace(/^"|"$/g, '');
}

/** COPY's flags and paths. */
function copyParts(args: string): { from?: string; sources: string[]; destination: string } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { ...(from ? { from } : {}), sources: paths.slice(0, -1), destination: paths[paths.length - 1] ?? '' };
}

t.test('the image is built in two stages on a maintained Node LTS', async (t) => {
  t.equal(stages.length, 2, 'a build stage and a runtime stage');
  const major = argDefault('NODE_MAJOR');
  t.ok(major === '22' || major === '24', `NODE_MAJOR defaults to a maintained LTS (22 or 24), not ${major}`);
  for (const from of stages) {
    t.match(from.args, /^docker\.io\/library\/node:\$\{NODE_MAJOR\}-bookworm-slim\b/, `${from.args} is Node's slim image`);
  }
  t.match(stages[0]?.args, /\bAS build$/i);
  t.match(stages[1]?.args, /\bAS runtime$/i);
});

t.test('the Node major of the image satisfies package.json engines', async (t) => {
  const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  const minimum = Number(/>=\s*(\d+)/.exec(engines)?.[1]);
  t.ok(Number(argDefault('NODE_MAJOR')) >= minimum, `Node ${argDefault('NODE_MAJOR')} >= ${minimum} (${engines})`);
});

t.test('dependencies are installed only from the lockfile, production ones without dev dependencies', async (t) => {
  for (const run of runs) {
    t.notMatch(run, /\bnpm\s+(install|i|add)\b/, `no npm install (only npm ci): ${run}`);
    t.notMatch(run, /\b(yarn|pnpm)\s+(install|add)\b/, `no other package manager: ${run}`);
  }
  const build = instructions.filter((i) => i.stage === 0);
  const lockCopy = build.findIndex((i) => i.keyword === 'COPY' && copyParts(i.args).sources.includes('package-lock.json'));
  const firstCi = build.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
  t.ok(lockCopy >= 0 && firstCi > lockCopy, 'package-lock.json is copied before npm ci');
  t.ok(runs.some((run) => /\bnpm run build\b/.test(run)), 'the build runs npm run build');
  t.ok(runs.some((run) => /\bnpm ci\b[^&]*--omit=dev/.test(run)), 'production dependencies: npm ci --omit=dev');
});

t.test('the runtime stage holds only dist/, production node_modules and package.json from the build stage', async (t) => {
  const copies = inFinal.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD').map((i) => ({ keyword: i.keyword, ...copyParts(i.args) }));
  t.same(copies.map((c) => c.keyword), ['COPY', 'COPY', 'COPY'], 'three COPYs, no ADD');
  for (const copy of copies) t.equal(copy.from, 'build', `${copy.sources.join(' ')} comes from the build stage`);
  t.same(copies.map((c) => c.destination).sort(), ['./dist', './node_modules', './package.json']);
  const prodInstall = runs.find((run) => /--omit=dev/.test(run)) ?? '';
  const prodDir = /cd\s+(\S+)\s+&&\s+npm ci/.exec(prodInstall)?.[1];
  t.ok(prodDir, 'the production install runs in its own directory');
  const modules = copies.find((c) => c.destination === './node_modules');
  t.equal(modules?.sources[0], `${prodDir}/node_modules`, 'node_modules is the production install, not the build one');
  t.same(inFinal.find((i) => i.keyword === 'WORKDIR')?.args, '/app');
});

t.test('the runtime stage runs as the non-root uid 65532', async (t) => {
  const users = inFinal.filter((i) => i.keyword === 'USER');
  t.equal(users.length, 1);
  // Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
  t.match(users[0]?.args, /^65532(:65532)?$/);
  const userIndex = inFinal.findIndex((i) => i.keyword === 'USER');
  t.ok(inFinal.slice(userIndex + 1).every((i) => i.keyword !== 'RUN'), 'nothing runs as root after USER');
});

t.test('the entrypoint is node dist/main.js with serve as the default command', async (t) => {
  const entrypoint = inFinal.filter((i) => i.keyword === 'ENTRYPOINT');
  const cmd = inFinal.filter((i) => i.keyword === 'CMD');
  t.equal(entrypoint.length, 1);
  t.equal(cmd.length, 1);
  // Exec form (JSON), so node is PID 1 and receives SIGTERM.
  t.same(JSON.parse(entrypoint[0]?.args ?? 'null'), ['node', 'dist/main.js']);
  t.same(JSON.parse(cmd[0]?.args ?? 'null'), ['serve']);
  const buildConfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { rootDir: string; outDir: string } };
  t.same([buildConfig.compilerOptions.rootDir, buildConfig.compilerOptions.outDir], ['src', 'dist'], 'npm run build turns src/main.ts into dist/main.js');
  t.ok(existsSync(join(ROOT, 'src/main.ts')));
});

t.test('the image works with a read-only root filesystem: HOME and TMPDIR are /tmp', async (t) => {
  const env = inFinal.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
  t.match(env, /\bHOME=\/tmp\b/);
  t.match(env, /\bTMPDIR=\/tmp\b/);
  t.match(env, /\bNODE_ENV=production\b/);
  t.notOk(inFinal.some((i) => i.keyword === 'VOLUME'), 'no VOLUME: the pod mounts an emptyDir at /tmp');
});

t.test('the image carries OCI labels', async (t) => {
  const labels = inFinal.filter((i) => i.keyword === 'LABEL').map((i) => i.args).join(' ');
  for (const key of ['title', 'description', 'version', 'revision', 'licenses', 'source']) {
    t.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`), key);
  }
  t.match(labels, /org\.opencontainers\.image\.licenses="Apache-2\.0"/);
});

t.test('no secret goes into the image: no secret-like ARG or ENV, no credential files copied', async (t) => {
  for (const i of instructions.filter((x) => x.keyword === 'ARG' || x.keyword === 'ENV')) {
    t.notMatch(i.args, /(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|NPM_?AUTH)/i, `${i.keyword} ${i.args}`);
  }
  for (const i of instructions.filter((x) => x.keyword === 'COPY' || x.keyword === 'ADD')) {
    t.notMatch(i.args, /(\.npmrc|\.env\b|\.pem\b|\.key\b|id_rsa|\.git\b)/, `${i.keyword} ${i.args}`);
  }
  t.notMatch(text, /--mount=type=secret/, 'no build secrets are needed');
});

t.test('the build context admits only what the build copies, and all of it exists', async (t) => {
  t.equal(dockerignore[0], '*', '.dockerignore starts by excluding everything');
  const allowed = dockerignore.slice(1).map((line) => line.replace(/^!/, '').replace(/\/$/, ''));
  t.ok(dockerignore.slice(1).every((line) => line.startsWith('!')), 'then only re-admits paths');
  const fromContext = instructions
    .filter((i) => i.keyword === 'COPY' && !copyParts(i.args).from)
    .flatMap((i) => copyParts(i.args).sources);
  t.same([...new Set(fromContext)].sort(), [...allowed].sort(), 'the context is exactly what COPY takes from it');
  for (const path of fromContext) t.ok(existsSync(join(ROOT, path)), `${path} exists`);
});
