/**
 * A seeded PRNG (mulberry32) and the few draws the hostile generators need. Same seed, same cases:
 * a failing run is replayed with its printed seed (HOSTILE_SEED=… or `--seed …`).
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [min, max] (both included). */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Picks by weight: `[[value, weight], ...]`. */
  weighted<T>(entries: ReadonlyArray<readonly [T, number]>): T {
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let x = this.float() * total;
    for (const [value, w] of entries) if ((x -= w) < 0) return value;
    return entries[entries.length - 1][0];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** A short string from `alphabet`. */
  word(alphabet: string, min: number, max: number): string {
    let s = "";
    for (let i = this.range(min, max); i > 0; i--) s += alphabet[this.int(alphabet.length)];
    return s;
  }
}

/** A seed from the environment (HOSTILE_SEED, decimal or 0x-hex), else `fallback`. */
export function seedFrom(value: string | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback >>> 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new Error(`bad seed ${JSON.stringify(value)}: an integer 0..2^32-1`);
  return n >>> 0;
}

/** A fresh seed for a run that was not given one (printed, so it can be replayed). */
export const randomSeed = (): number => (Math.random() * 0x1_0000_0000) >>> 0;
