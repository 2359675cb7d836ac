import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderManifests } from '../src/manifests/render.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = renderManifests();
for (const dir of ['manifests/crds', 'manifests/metacontroller']) {
  mkdirSync(join(root, dir), { recursive: true });
  for (const name of readdirSync(join(root, dir))) {
    if (name.endsWith('.yaml') && !files.has(`${dir}/${name}`)) rmSync(join(root, dir, name));
  }
}
for (const [path, text] of files) writeFileSync(join(root, path), text);
console.log(`wrote ${files.size} manifests`);
