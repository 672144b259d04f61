// What each command takes, printed by `zot --help`, `zot <command> --help` and after a usage
// error; and the exit codes every command shares.

/** Exit codes, the same for every command. */
export const EXIT = {
  /** Done, nothing wrong found. */
  ok: 0,
  /** The command ran and found a problem: a configuration that is invalid or that serve refuses, drift, corruption, nothing to read. */
  problem: 1,
  /** The command line is wrong: an unknown command or option, a missing, extra or malformed argument. */
  usage: 2,
} as const;

/** A mistake in the command line; the entry point prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const COMMAND_USAGE: Readonly<Record<string, string>> = {
  serve: `usage: zot serve <config>

Runs the registry. SIGTERM or SIGINT drains in-flight requests and closes the event log;
SIGHUP reopens log.output and log.audit. Refuses to start, naming each one, when the
configuration asks for a feature this release does not build.
`,
  verify: `usage: zot verify <config>

Checks a configuration file (JSON, YAML or TOML) and names every bad field with its path. For a
valid file, prints what serve will listen on and the storage roots it will use; exits 1, naming
them, when serve would refuse a feature the file asks for.
`,
  events: `usage: zot events <config> [--repo R] [--type T] [--since SEQ|ISO-TIME] [--follow] [--json]

Prints the event log, read-only; --follow keeps printing new events until SIGINT or SIGTERM.
`,
  replay: `usage: zot replay <config> [--rehash] [--json]

Rebuilds every projection from the log into a scratch database and reports any difference from
the live projections and from storage (exit 1 on drift); --rehash also re-hashes every blob and
manifest the log names.
`,
  scrub: `usage: zot scrub <config> [--json]

Re-hashes every blob and manifest the event log names and reports, per repository, what is
intact, corrupt or missing (exit 1 when anything is).
`,
  audit: `usage: zot audit <config> [--repo GLOB] [--identity ID] [--type T,T] [--since P] [--until P] [--follow] [--json]
       zot audit <config> --at SEQ|ISO-TIME <repo>
       zot audit <config> --history <repo>:<tag>
       zot audit <config> --rebuild-audit-log

Lists the actions that changed the registry, and refused writes (P: SEQ|ISO-TIME); --at shows a
repository's tags as they were then; --history every digest a tag pointed to, who moved it and
when; --rebuild-audit-log regenerates the log.audit file from the event log.
`,
};

export const MAIN_USAGE = `usage: zot <command> [arguments]
       zot <command> --help
       zot --version

commands:
  serve <config>     run the registry
  verify <config>    check a configuration file, name every bad field, show what serve will use
  events <config>    print the event log
  replay <config>    rebuild the projections from the log and compare them with the live ones
  scrub <config>     re-hash every blob and manifest and report what is corrupt or missing
  audit <config>     list the actions that changed the registry; a repository or tag's history

exit codes: 0 ok, 1 a problem found (invalid configuration, drift, corruption, ...),
            2 a usage error (unknown command or option, missing or malformed argument)
`;

/** The configuration file argument of a command that takes one positional argument at most besides it. */
export function configArgument(positionals: readonly string[], extra = 0): string {
  const file = positionals[0];
  if (file === undefined) throw new UsageError('a configuration file is required');
  const unexpected = positionals[1 + extra];
  if (unexpected !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(unexpected)}`);
  return file;
}
