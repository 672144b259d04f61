// `zot <command> <config>`: the command-line entry point (bin/zot.js is a shim over this).
import { runAudit } from './audit.js';
import { runEvents } from './events.js';
import { runReplay } from './replay.js';
import { runScrub } from './scrub.js';
import { runServe } from './serve.js';
import { runVerify } from './verify.js';

const USAGE = `usage: zot <command> [arguments]

commands:
  serve <config>     run the registry
  verify <config>    check a configuration file and name every bad field
  events <config> [--repo R] [--type T] [--since SEQ|ISO-TIME] [--follow] [--json]
                     print the event log
  replay <config> [--rehash] [--json]
                     rebuild every projection from the log into a scratch database and report
                     any difference from the live projections and from storage (exit 1 on drift);
                     --rehash also re-hashes every blob and manifest the log names
  scrub <config> [--json]
                     re-hash every blob and manifest and report what is corrupt or missing
                     (exit 1 when anything is, 2 on a usage or configuration error)
  audit <config> [--repo GLOB] [--identity ID] [--type T,T] [--since P] [--until P] [--follow] [--json]
                     list the actions that changed the registry, and refused writes (P: SEQ|ISO-TIME)
  audit <config> --at SEQ|ISO-TIME <repo>
                     the repository's tags and the digests they pointed to at that point
  audit <config> --history <repo>:<tag>
                     every digest the tag pointed to, who moved it and when
  audit <config> --rebuild-audit-log
                     regenerate the log.audit file from the event log
`;

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  serve: runServe,
  verify: runVerify,
  events: runEvents,
  replay: runReplay,
  scrub: runScrub,
  audit: runAudit,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`zot: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    return 2;
  }
  return run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`zot: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
