/**
 * `npm run bench:torn` — how often a power cut during a settings write bricks a device, with the current
 * firmware (devs/.devicescript/bin/bytecode.devs) against the broker we ship, esp32 profile.
 *
 * Trials: each one is a factory-new device (fresh flash, deployed = "re-flashed") running until its torn write:
 * the fault `torn-write` (torn-write.ts) at probability P per settings write, so the cut lands on one of its
 * first writes (write n with probability P(1-P)^(n-1)), at a seeded byte k in [0, n]. Then the next boot's own
 * mount code decides: bricked (the runtime reformatted its store), or it mounted — with the write lost (k = 0),
 * complete (k = n), or partial (a cut inside the entry's size field: the VM mounts it and reads the record as
 * absent; what the device does next is recorded). LANES devices run at once; TOTAL cuts in all. Writes bench-results/torn-writes.json.
 * Also: flash writes per completed wake (boot → standby) seen before the cuts.
 *
 * Env: BENCH_TORN_CUTS (default 1000), BENCH_TORN_LANES (20), BENCH_TORN_P (0.5), BENCH_TORN_PROFILE (esp32).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { SimDevice } from "./device.ts";
import { startSimBroker } from "./sim-broker.ts";
import { type Fleet, startFleet } from "./fleet.ts";
import { type ProfileName, resolveProfile } from "./profile.ts";
import { readFirmware } from "./vm.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TOTAL = Number(process.env.BENCH_TORN_CUTS ?? 1000);
const LANES = Number(process.env.BENCH_TORN_LANES ?? 20);
const P = Number(process.env.BENCH_TORN_P ?? 0.5);
const PROFILE = (process.env.BENCH_TORN_PROFILE ?? "esp32") as ProfileName;
const TIME_SCALE = 100; // INTERVAL_S=5 → 50 ms of real deep sleep
/** A trial without a cut by then is given up (counted, not a cut). */
const TRIAL_TIMEOUT_MS = 90_000;
/** After a partial write mounted: how long to watch for a completed wake, a panic or a boot loop. */
const AFTER_MOUNT_MS = 30_000;

type Outcome = "bricked" | "write-lost" | "write-survived" | "partial-mounted";

interface Trial {
  trial: number;
  key: string;
  k: number;
  n: number;
  /** Which settings write of this device (1-based) was cut. */
  write: number;
  outcome: Outcome;
  /** partial-mounted: what the device did next. */
  after?: "completed-wake" | "panic" | "boot-loop" | "cut-again" | "nothing-within-30s";
}

interface LaneStats {
  writesPerWake: number[];
  timeouts: number;
}

/** Resolves with what `setup` reports first, or `fallback` after timeoutMs. */
function waitEvent<T>(setup: (done: (v: T) => void) => void, timeoutMs: number, fallback: T): Promise<T> {
  return new Promise((resolveWait) => {
    let finished = false;
    const done = (v: T) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolveWait(v);
    };
    const timer = setTimeout(() => done(fallback), timeoutMs);
    setup(done);
  });
}

async function runTrial(trial: number, brokerUrl: string, flashRoot: string, stats: LaneStats): Promise<Trial | undefined> {
  const flashDir = join(flashRoot, `t${trial}`);
  const fleet = await startFleet({
    devices: 1,
    brokerUrl,
    flashDir,
    eraseFlash: true,
    seed: 10_000 + trial,
    idPrefix: `torn${trial}`,
    settings: { INTERVAL_S: 5, DEVICE_ID: `torn-${trial}` },
    timeScale: TIME_SCALE,
    profile: PROFILE,
    faults: { tornWrite: P, seed: 10_000 + trial, powerOffMs: 50 },
  });
  const device: SimDevice = fleet.devices[0]!;
  // Flash writes per completed wake: saves between a boot event (after deploy) and the standby request.
  let writesThisBoot = 0;
  let firmwareWrites = 0;
  fleet.on("boot", () => (writesThisBoot = 0));
  fleet.on("flash", () => {
    writesThisBoot++;
    firmwareWrites++;
  });
  fleet.on("standby", () => stats.writesPerWake.push(writesThisBoot));
  try {
    const cut = await waitEvent<{ key: string; k: number; n: number; write: number } | undefined>(
      (done) => fleet.once("torn-write", (e) => done({ key: e.key, k: e.cutAtByte, n: e.bytes, write: firmwareWrites })),
      TRIAL_TIMEOUT_MS,
      undefined,
    );
    if (!cut) {
      stats.timeouts++;
      return undefined;
    }
    // The boot after the power comes back: bricked at mount, or mounted (its boot event, state awake).
    const bricked = await waitEvent<boolean>(
      (done) => {
        fleet.once("bricked", () => done(true));
        fleet.on("boot", (e) => {
          if (e.cause === "power-restore") setImmediate(() => done(device.state === "bricked"));
        });
      },
      TRIAL_TIMEOUT_MS,
      false,
    );
    const base = { trial, key: cut.key, k: cut.k, n: cut.n, write: cut.write };
    if (bricked) return { ...base, outcome: "bricked" };
    if (cut.k === 0) return { ...base, outcome: "write-lost" };
    if (cut.k === cut.n) return { ...base, outcome: "write-survived" };
    const after = await waitEvent<Trial["after"]>(
      (done) => {
        fleet.once("standby", () => done("completed-wake"));
        fleet.once("boot-loop", () => done("boot-loop"));
        fleet.once("panic", () => done("panic"));
        fleet.once("torn-write", () => done("cut-again")); // the plan also cut one of the next writes
      },
      AFTER_MOUNT_MS,
      "nothing-within-30s",
    );
    return { ...base, outcome: "partial-mounted", after };
  } finally {
    await fleet.stop();
    rmSync(flashDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const firmware = readFirmware();
  const profile = resolveProfile(PROFILE);
  const broker = await startSimBroker(0);
  const flashRoot = mkdtempSync(join(tmpdir(), "bench-torn-"));
  const started = Date.now();
  const trials: Trial[] = [];
  const stats: LaneStats = { writesPerWake: [], timeouts: 0 };
  let next = 0;
  console.log(
    `bench:torn: ${TOTAL} torn writes, ${LANES} devices at a time, P=${P} per settings write, profile ${profile.name}, ` +
      `firmware ${firmware.sha256.slice(0, 12)}, shipped broker ${broker.url}`,
  );
  const lane = async () => {
    // Exactly TOTAL trials with a cut: a trial that timed out without one frees its slot (at most TOTAL of those).
    while (next < TOTAL + Math.min(stats.timeouts, TOTAL)) {
      const trial = next++;
      const result = await runTrial(trial, broker.url, flashRoot, stats);
      if (!result) continue;
      trials.push(result);
      if (trials.length % 50 === 0 || trials.length === TOTAL) {
        const bricked = trials.filter((t) => t.outcome === "bricked").length;
        console.log(
          `bench:torn: ${trials.length}/${TOTAL} cuts, ${bricked} bricked, ${((Date.now() - started) / 1000).toFixed(0)} s`,
        );
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: LANES }, () => lane()));
  } finally {
    await broker.close();
    rmSync(flashRoot, { recursive: true, force: true });
  }
  const count = (o: Outcome) => trials.filter((t) => t.outcome === o).length;
  const byKey: Record<string, { cuts: number; bricked: number; meanBytes: number }> = {};
  for (const t of trials) {
    const kind = /^o\d+$/.test(t.key) ? "o<slot> (reading)" : t.key;
    const e = (byKey[kind] ??= { cuts: 0, bricked: 0, meanBytes: 0 });
    e.meanBytes = (e.meanBytes * e.cuts + t.n) / (e.cuts + 1);
    e.cuts++;
    if (t.outcome === "bricked") e.bricked++;
  }
  const partialAfter: Record<string, number> = {};
  for (const t of trials) if (t.after) partialAfter[t.after] = (partialAfter[t.after] ?? 0) + 1;
  const wpw = stats.writesPerWake;
  const histogram: Record<string, number> = {};
  for (const w of wpw) histogram[w] = (histogram[w] ?? 0) + 1;
  const bricked = count("bricked");
  const result = {
    date: new Date().toISOString(),
    firmwareSha256: firmware.sha256,
    profile: profile.name,
    broker: "gateway/src/broker (shipped, embedded, in memory, open auth)",
    lanes: LANES,
    tornWriteProbabilityPerWrite: P,
    cuts: trials.length,
    bricked,
    writeSurvived: count("write-survived"),
    writeLost: count("write-lost"),
    partialMounted: count("partial-mounted"),
    partialMountedThen: partialAfter,
    partialMountedTrials: trials.filter((t) => t.outcome === "partial-mounted").map(({ key, k, n, after }) => ({ key, k, n, after })),
    bricksPer1000Cuts: trials.length ? Math.round((bricked / trials.length) * 1000 * 10) / 10 : NaN,
    byKey,
    cutAtWrite: Object.fromEntries(
      [...new Set(trials.map((t) => t.write))].sort((a, b) => a - b).map((w) => [w, trials.filter((t) => t.write === w).length]),
    ),
    flashWritesPerWake: {
      wakes: wpw.length,
      mean: wpw.length ? Math.round((wpw.reduce((a, b) => a + b, 0) / wpw.length) * 100) / 100 : NaN,
      max: wpw.length ? Math.max(...wpw) : NaN,
      histogram,
    },
    trialsWithoutCut: stats.timeouts,
    durationS: Math.round((Date.now() - started) / 1000),
  };
  const out = join(REPO_ROOT, "bench-results/torn-writes.json");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(
    `bench:torn: ${result.cuts} cuts: ${bricked} bricked (${result.bricksPer1000Cuts} per 1,000), ` +
      `${result.writeSurvived} write survived (k = n), ${result.writeLost} write lost (k = 0), ` +
      `${result.partialMounted} partial write mounted ${JSON.stringify(partialAfter)}; ` +
      `flash writes per wake mean ${result.flashWritesPerWake.mean}, max ${result.flashWritesPerWake.max} ` +
      `(${wpw.length} wakes); ${result.durationS} s → ${out}`,
  );
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
