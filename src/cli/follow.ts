// `--follow` for the log-reading commands: poll for new events until SIGINT or SIGTERM.
const FOLLOW_POLL_MS = 500;

export async function followUntilSignal(poll: () => void): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setInterval(poll, FOLLOW_POLL_MS);
    const stop = (): void => {
      clearInterval(timer);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
