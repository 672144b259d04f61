// `zot <command> <config>`: the command-line entry point (bin/zot.js is a shim over this).
// Exit codes are the same for every command: 0 ok, 1 a problem found, 2 a usage error (usage.ts).
import { runAudit } from './audit.js';
import { runEvents } from './events.js';
import { runReplay } from './replay.js';
import { runScrub } from './scrub.js';
import { runServe } from './serve.js';
import { COMMAND_USAGE, EXIT, MAIN_USAGE, UsageError } from './usage.js';
import { runVerify } from './verify.js';
import { version } from './version.js';

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve: runServe,
  verify: runVerify,
  events: runEvents,
  replay: runReplay,
  scrub: runScrub,
  audit: runAudit,
};

const HELP = new Set(['-h', '--help']);

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === '--version' || command === '-v' || command === 'version') {
    process.stdout.write(`zot-ts ${version()}\n`);
    return EXIT.ok;
  }
  if (command === undefined) {
    process.stderr.write(MAIN_USAGE);
    return EXIT.usage;
  }
  if (HELP.has(command) || command === 'help') return help(args[0]);
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`zot: unknown command ${JSON.stringify(command)}\n\n${MAIN_USAGE}`);
    return EXIT.usage;
  }
  if (args.some((arg) => HELP.has(arg))) return help(command);
  try {
    return await run(args);
  } catch (err) {
    if (!isUsageError(err)) throw err;
    process.stderr.write(`zot ${command}: ${err.message}\n${COMMAND_USAGE[command]?.split('\n\n')[0] ?? ''}\n`);
    return EXIT.usage;
  }
}

/** `zot help [command]`, `zot --help`, `zot <command> --help`: usage on stdout, exit 0. */
function help(command: string | undefined): number {
  if (command === undefined) {
    process.stdout.write(MAIN_USAGE);
    return EXIT.ok;
  }
  const usage = COMMAND_USAGE[command];
  if (usage === undefined) {
    process.stderr.write(`zot: unknown command ${JSON.stringify(command)}\n\n${MAIN_USAGE}`);
    return EXIT.usage;
  }
  process.stdout.write(usage);
  return EXIT.ok;
}

// node:util parseArgs reports an unknown option or a missing option value with these codes.
function isUsageError(err: unknown): err is Error {
  if (err instanceof UsageError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`zot: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = EXIT.problem;
  },
);
