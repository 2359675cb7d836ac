// The one quoting function: every argument reaches the program as exactly the bytes it was, and
// nothing in it is interpreted by the shell. Checked against a real /bin/sh.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { commandLine, shellQuote } from '../../../src/hypervisors/libvirt/shell.js';

const HOSTILE = [
  'plain',
  '',
  'with space',
  "it's",
  "'",
  "''",
  '"double"',
  '$(touch /tmp/virtrigaud-pwned)',
  '`touch /tmp/virtrigaud-pwned`',
  'a; touch /tmp/virtrigaud-pwned',
  'a && rm -rf /',
  'line1\nline2; touch /tmp/virtrigaud-pwned',
  '${HOME}',
  '\\',
  '\\\'',
  '*',
  '-rf',
  '|cat',
  '> /tmp/virtrigaud-pwned',
  'ünïcødé ✓',
  "x'; touch /tmp/virtrigaud-pwned; echo '",
];

t.test('each hostile argument survives a real shell unchanged and runs nothing', async (t) => {
  for (const argument of HOSTILE) {
    // printf prints each argument followed by NUL, so the split shows the argument boundaries.
    const out = execFileSync('/bin/sh', ['-c', commandLine(['printf', '%s\\0', argument])], { encoding: 'utf8' });
    t.same(out.split('\0').slice(0, -1), [argument], JSON.stringify(argument));
  }
  const all = execFileSync('/bin/sh', ['-c', commandLine(['printf', '%s\\0', ...HOSTILE])], { encoding: 'utf8' });
  t.same(all.split('\0').slice(0, -1), HOSTILE, 'all at once keep their boundaries');
  t.throws(() => execFileSync('test', ['-e', '/tmp/virtrigaud-pwned']), 'no injected command ran');
});

t.test('a quoted argument is always one single-quoted word', async (t) => {
  t.equal(shellQuote('abc'), "'abc'");
  t.equal(shellQuote("it's"), "'it'\\''s'");
  t.equal(shellQuote(''), "''");
});

t.test('NUL bytes and empty commands are refused, not truncated', async (t) => {
  t.throws(() => shellQuote('a\0b'), { code: 'InvalidSpec' });
  t.throws(() => commandLine([]), { code: 'InvalidSpec' });
});
