// Flag parsing as kubectl (pflag) does it (src/cli/vrtg/args.ts).
import t from 'tap';
import { parseArgs, splitCommand, type FlagSpec } from '../../../src/cli/vrtg/args.js';

const FLAGS: FlagSpec[] = [
  { name: 'vm', kind: 'string', help: '' },
  { name: 'include-memory', kind: 'boolean', help: '' },
  { name: 'output', short: 'o', kind: 'string', help: '' },
  { name: 'dry-run', kind: 'string', bare: 'client', help: '' },
];
const parse = (argv: string[]) => {
  const parsed = parseArgs(argv, FLAGS, 'vrtg test');
  return { positionals: parsed.positionals, strings: Object.fromEntries(parsed.strings), booleans: Object.fromEntries(parsed.booleans) };
};

t.test('string flags take =value or the next argument; short ones also -oVALUE and -o=VALUE', async (t) => {
  t.same(parse(['a', '--vm=web', '-n', 'prod', 'b']), { positionals: ['a', 'b'], strings: { vm: 'web', namespace: 'prod' }, booleans: {} });
  t.same(parse(['--vm', 'web', '-ojson']).strings, { vm: 'web', output: 'json' });
  t.same(parse(['-o=yaml']).strings, { output: 'yaml' });
});

t.test('boolean flags are --flag or --flag=true|false; a separate false is an argument', async (t) => {
  t.same(parse(['--include-memory']).booleans, { 'include-memory': true });
  t.same(parse(['--include-memory=false']).booleans, { 'include-memory': false });
  t.same(parse(['--include-memory', 'false']), { positionals: ['false'], strings: {}, booleans: { 'include-memory': true } });
  t.throws(() => parse(['--include-memory=yes']), { message: '--include-memory must be true or false, not "yes"', exitCode: 2 });
});

t.test('a flag with a bare value takes it when given alone, and never the next argument', async (t) => {
  t.same(parse(['--dry-run', 'x']), { positionals: ['x'], strings: { 'dry-run': 'client' }, booleans: {} });
  t.same(parse(['--dry-run=server']).strings, { 'dry-run': 'server' });
});

t.test('-- ends the flags', async (t) => {
  t.same(parse(['--', '--vm=web']).positionals, ['--vm=web']);
});

t.test('a string flag at the end without its value is a usage error', async (t) => {
  t.throws(() => parse(['--vm']), { message: '--vm needs a value (see vrtg test --help)', exitCode: 2 });
});

t.test('global flags before the command are kept apart from the command words', async (t) => {
  t.same(splitCommand(['-n', 'prod', '--context=lab', 'snapshot', 'list', '-A']), { words: ['snapshot', 'list', '-A'], rest: ['-n', 'prod', '--context=lab'] });
  t.same(splitCommand(['--help']), { words: [], rest: ['--help'] });
});
