// The one place where an argument vector becomes a command line for the remote shell. sshd hands
// the exec request to the login shell (`$SHELL -c`), so every word is POSIX single-quoted: inside
// '…' nothing is special except the quote itself, which is closed, escaped and reopened. Names,
// paths and URLs with spaces, quotes, `$()`, `;` or newlines stay one inert argument each.

import { InvalidSpecError } from '../../contracts/driver.js';

/** One argument, quoted for a POSIX shell. */
export function shellQuote(argument: string): string {
  // A NUL cannot be passed in an argv at all; refusing it beats silently truncating.
  if (argument.includes('\0')) throw new InvalidSpecError('an argument contains a NUL byte');
  return `'${argument.replace(/'/g, `'\\''`)}'`;
}

/** An argument vector as one remote command line. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new InvalidSpecError('empty command');
  return argv.map(shellQuote).join(' ');
}
