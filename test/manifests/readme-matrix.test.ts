// The README's provider feature matrix is the drivers' capability flags: regenerate it with
// `npm run readme`. Every capability has a row, and every conformance case a row names exists and
// verifies one of that row's capabilities.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { MATRIX_ROWS, renderMatrix, withCurrentMatrix } from '../../scripts/readme-matrix.js';
import { CONFORMANCE_CASES } from '../../src/conformance/index.js';
import { CAPABILITIES } from '../../src/contracts/driver.js';

t.test('README.md carries the current feature matrix', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  t.ok(readme.includes(renderMatrix()), 'stale: run `npm run readme` and commit README.md');
  t.equal(withCurrentMatrix(readme), readme);
});

t.test('every capability is in a row of the matrix', async (t) => {
  const listed = new Set(MATRIX_ROWS.flatMap((row) => (row.capabilities === 'core' ? [] : row.capabilities)));
  t.same(CAPABILITIES.filter((capability) => !listed.has(capability)), [], 'capabilities in no row');
});

t.test("a row's conformance cases exist and verify that row", async (t) => {
  const cases = new Map(CONFORMANCE_CASES.map((entry) => [entry.id, entry]));
  for (const row of MATRIX_ROWS) {
    for (const id of row.cases) {
      const entry = cases.get(id);
      if (entry === undefined) {
        t.fail(`${row.feature}: no conformance case '${id}'`);
        continue;
      }
      const verifies = entry.capability === 'core' || (row.capabilities !== 'core' && row.capabilities.includes(entry.capability));
      t.ok(verifies, `${row.feature}: case '${id}' verifies ${entry.capability}`);
    }
  }
});

t.test('a cell is the flags of its row', async (t) => {
  const matrix = renderMatrix();
  // Proxmox claims every Machine setting; the other drivers none (refused as Unsupported).
  t.match(matrix, /\| \*\*Chosen VM IDs\*\* \| ❌ \| ❌ \| ✅ \| ❌ \|/);
  t.match(matrix, /\| \*\*Core Operations\*\* \| ✅ \| ✅ \| ✅ \| ✅ \|/);
});
