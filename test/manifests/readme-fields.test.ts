// The README's field-support table is the one the hooks read: regenerate it with `npm run readme`.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { renderFieldTable, withCurrentTable } from '../../scripts/readme-fields.js';

t.test('README.md carries the current field-support table', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  t.ok(readme.includes(renderFieldTable()), 'stale: run `npm run readme` and commit README.md');
  t.equal(withCurrentTable(readme), readme);
});

t.test('every row names the drivers: a capability row is honoured or Unsupported per driver', async (t) => {
  const table = renderFieldTable();
  t.match(table, /\| `securityProfile\.tpmEnabled` = `true` \| ✓ \| ✓ \| ✓ \| needs `tpm` and `uefi` \|/);
  t.match(table, /\| `diskDefaults\.iops` \| ✗ \| ✗ \| ✗ \| no driver offers it \|/);
  t.match(table, /\| `placement\.folder` \| ✗ \| ✓ \| ✗ \| needs `placementFolder` \|/);
});
