/**
 * Seeded, stateless randomness. Every random decision in the simulator is a pure function of
 * (seed, labels...): the same seed gives the same sensor values and the same fault schedule, whatever the
 * timing of the run. Never Math.random.
 */

/** 32-bit FNV-1a over the labels, then a murmur3 finaliser: a well-mixed u32 per distinct input. */
export function hash32(...labels: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const label of labels) {
    const text = `${label}\u0000`;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform in [0, 1) for the labels. */
export function unit(...labels: (string | number)[]): number {
  return hash32(...labels) / 0x1_0000_0000;
}

/** Mulberry32: a seeded sequence, for callers that need many draws in order (benchmarks, schedules). */
export function sequence(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}
