// A shared/exclusive lock per repository. Writes into a repository hold it shared, so they run
// side by side; GC holds it exclusive only to remove a repository that is empty, so no write can
// lay out files in it between the emptiness check and the removal.
export class RepositoryGate {
  private readonly states = new Map<string, { shared: number; exclusive: boolean; waiting: (() => void)[] }>();

  async shared<T>(repo: string, work: () => Promise<T>): Promise<T> {
    // The state is looked up again after each wait: an idle repository's entry is dropped.
    let state = this.state(repo);
    while (state.exclusive) {
      const waitOn = state;
      await new Promise<void>((resolve) => waitOn.waiting.push(resolve));
      state = this.state(repo);
    }
    state.shared++;
    try {
      return await work();
    } finally {
      state.shared--;
      this.wake(repo, state);
    }
  }

  /** Runs `work` alone in the repository, or answers undefined at once when a write is in progress. */
  async tryExclusive<T>(repo: string, work: () => Promise<T>): Promise<T | undefined> {
    const state = this.state(repo);
    if (state.exclusive || state.shared > 0) return undefined;
    state.exclusive = true;
    try {
      return await work();
    } finally {
      state.exclusive = false;
      this.wake(repo, state);
    }
  }

  private state(repo: string) {
    let state = this.states.get(repo);
    if (!state) this.states.set(repo, (state = { shared: 0, exclusive: false, waiting: [] }));
    return state;
  }

  private wake(repo: string, state: { shared: number; exclusive: boolean; waiting: (() => void)[] }): void {
    if (state.exclusive) return;
    for (const resolve of state.waiting.splice(0)) resolve();
    if (state.shared === 0) this.states.delete(repo);
  }
}
