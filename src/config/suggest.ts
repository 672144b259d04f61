// "Did you mean …": the known key nearest to a misspelt one, so a typo's message names the fix.

/** The candidate closest to `word` by edit distance (case ignored), if it is close enough. */
export function nearestKey(word: string, candidates: readonly string[]): string | undefined {
  const typed = word.toLowerCase();
  let best: { key: string; distance: number } | undefined;
  for (const key of candidates) {
    const known = key.toLowerCase();
    // An abbreviation of a long key ("rootDir") is as good a hint as a near spelling.
    const distance = typed.length >= 4 && known.startsWith(typed) ? 1 : editDistance(typed, known);
    const allowed = Math.max(1, Math.floor(known.length / 3));
    if (distance <= allowed && (best === undefined || distance < best.distance)) best = { key, distance };
  }
  return best?.key;
}

/** Levenshtein distance: insertions, deletions and substitutions of one character. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
