/**
 * `npm run bench:sim` — figures from the simulator running the real firmware against the broker we ship
 * (gateway/src/broker, embedded, in memory): per wake cycle under the esp32 profile (and, for comparison, the
 * plain VM at QoS 1) the awake time split the firmware reports in its `wake: times` log line — runtime start,
 * local work, Wi-Fi, MQTT, command wait, goodbye — p50/p95; program start → standby with Wi-Fi excluded (the
 * issue 9 target); boot → first telemetry PUBLISH; bytes on the wire per reading at QoS 0/1/2; flash writes
 * per wake; and devices per process with RSS and CPU. Writes bench-results/simulator.json (hardware/power reads
 * it: `esp32.qos1.p50.wifiMs` etc.). Figures, not a pass/fail test.
 *
 * Only "wake" cycles count (the first boot in a process also deploys the firmware and creates the session).
 * `--rss-child <n>` is the internal mode that measures one fleet size in a fresh process.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startSimBroker } from "./sim-broker.ts";
import { type Fleet, startFleet } from "./fleet.ts";
import type { ProfileName } from "./profile.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CYCLES_PER_DEVICE = 6;
const QOS_DEVICES = 5;
const TIME_SCALE = 50; // INTERVAL_S=5 → about 100 ms of real deep sleep: cycles back to back
const FLEET_SIZES = [10, 50, 100];
const RSS_SETTLE_MS = 15_000;

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The firmware's own split of one wake (devs/src/main.ts, `wake: times ...`), ms. */
const TIMES_LINE = /^wake: times runtime (\d+) local (\d+) wifi (\d+) mqtt (\d+) commands (\d+) stay (\d+) goodbye (\d+)/;

/** Per-wake figures by name, as hardware/power reads them (p50 and p95 of each). */
interface WakeSplit {
  /** boot (the runtime's clock at 0) → standby request, as the simulator measures it */
  awakeMs: number;
  /** boot → the program starts (the runtime's own start-up) */
  runtimeStartMs: number;
  /** program start → first connect attempt: settings, outbox, measurement, flash write */
  localMs: number;
  wifiMs: number;
  mqttMs: number;
  commandWaitMs: number;
  goodbyeMs: number;
  /** program start → standby request, Wi-Fi wait excluded (issue 9: p50 ≤ 500 ms) */
  programToStandbyNoWifiMs: number;
  flashWritesPerWake: number;
}

interface CycleFigures {
  profile: ProfileName;
  qos: number;
  devices: number;
  cycles: number;
  p50: WakeSplit;
  p95: WakeSplit;
  awakeMs: { p50: number; p95: number };
  /** Boot → the VM starts the program from flash (the runtime's own start-up delay). */
  bootToProgramStartMs: { p50: number; p95: number };
  /** Boot → the firmware received its first simulated sensor reading. */
  bootToFirstSensorReadingMs: { p50: number; p95: number };
  bootToFirstTelemetryMs: { p50: number; p95: number };
  flashWritesPerCycle: { mean: number; max: number };
  bytesPerReading: number;
  telemetryPublishBytes: number;
  packetsPerCycle: number;
}

/** Runs QOS_DEVICES devices at one QoS until each finished CYCLES_PER_DEVICE wake cycles. */
async function measureCycles(profile: ProfileName, qos: number, flashRoot: string): Promise<CycleFigures> {
  const broker = await startSimBroker();
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet({
      devices: QOS_DEVICES,
      brokerUrl: broker.url,
      seed: 1,
      timeScale: TIME_SCALE,
      flashDir: join(flashRoot, `${profile}-qos${qos}`),
      eraseFlash: true,
      profile,
      settings: { INTERVAL_S: 5, QOS: qos },
    });
    const split: Omit<WakeSplit, "awakeMs" | "flashWritesPerWake">[] = [];
    const awake: number[] = [];
    const firstTelemetry: number[] = [];
    const programStart: number[] = [];
    const firstSensorReading: number[] = [];
    const flashPerCycle: number[] = [];
    const perDevice = fleet.devices.map(() => ({ inCycle: false, bootAt: 0, flash: 0, sawTelemetry: false, done: 0 }));
    let bytesAtStart = 0;
    let packetsAtStart = 0;
    let readings = 0;
    let telemetryBytes = 0;
    const wire = () => fleet!.counters().wire;
    const totalPackets = () =>
      [...Object.values(wire().packetsIn), ...Object.values(wire().packetsOut)].reduce((a, b) => a + b, 0);

    fleet.on("boot", ({ device, cause }) => {
      const d = perDevice[device.index]!;
      if (cause !== "wake" || d.done >= CYCLES_PER_DEVICE) return;
      if (d.done === 0 && !perDevice.some((x) => x.inCycle || x.done > 0)) {
        // the first measured cycle anywhere: start counting wire bytes here
        bytesAtStart = wire().bytesIn + wire().bytesOut;
        packetsAtStart = totalPackets();
      }
      Object.assign(d, { inCycle: true, bootAt: Date.now(), flash: 0, sawTelemetry: false });
    });
    fleet.on("log", ({ device, line }) => {
      const m = TIMES_LINE.exec(line);
      if (!m || !perDevice[device.index]!.inCycle) return;
      const [runtime, local, wifi, mqtt, commands, stay, goodbye] = m.slice(1).map(Number) as number[];
      split.push({
        runtimeStartMs: runtime!,
        localMs: local!,
        wifiMs: wifi!,
        mqttMs: mqtt!,
        commandWaitMs: commands!,
        goodbyeMs: goodbye!,
        programToStandbyNoWifiMs: local! + mqtt! + commands! + stay! + goodbye!,
      });
    });
    fleet.on("dmesg", ({ device, line }) => {
      const d = perDevice[device.index]!;
      if (d.inCycle && line.startsWith("DevS-SHA256:")) programStart.push(Date.now() - d.bootAt);
    });
    fleet.on("sensor-read", ({ device, sensor, afterMs }) => {
      if (perDevice[device.index]!.inCycle && sensor === "temperature") firstSensorReading.push(afterMs);
    });
    fleet.on("flash", ({ device }) => {
      const d = perDevice[device.index]!;
      if (d.inCycle) d.flash++;
    });
    fleet.on("publish", ({ device, topic, dup, bytes }) => {
      const d = perDevice[device.index]!;
      if (!d.inCycle || dup || !topic.endsWith("/telemetry")) return;
      readings++;
      telemetryBytes += bytes;
      if (!d.sawTelemetry) firstTelemetry.push(Date.now() - d.bootAt);
      d.sawTelemetry = true;
    });
    let bytesAtEnd = 0;
    let packetsAtEnd = 0;
    fleet.on("standby", ({ device, awakeMs }) => {
      const d = perDevice[device.index]!;
      if (!d.inCycle) return;
      d.inCycle = false;
      d.done++;
      awake.push(awakeMs);
      flashPerCycle.push(d.flash);
      if (perDevice.every((x) => x.done >= CYCLES_PER_DEVICE) && bytesAtEnd === 0) {
        bytesAtEnd = wire().bytesIn + wire().bytesOut;
        packetsAtEnd = totalPackets();
      }
    });
    await waitUntil(`QoS ${qos} cycles`, () => bytesAtEnd > 0, 180_000);
    const cycles = awake.length;
    const at = (p: number): WakeSplit => ({
      awakeMs: percentile(awake, p),
      runtimeStartMs: percentile(split.map((x) => x.runtimeStartMs), p),
      localMs: percentile(split.map((x) => x.localMs), p),
      wifiMs: percentile(split.map((x) => x.wifiMs), p),
      mqttMs: percentile(split.map((x) => x.mqttMs), p),
      commandWaitMs: percentile(split.map((x) => x.commandWaitMs), p),
      goodbyeMs: percentile(split.map((x) => x.goodbyeMs), p),
      programToStandbyNoWifiMs: percentile(split.map((x) => x.programToStandbyNoWifiMs), p),
      flashWritesPerWake: percentile(flashPerCycle, p),
    });
    return {
      profile,
      qos,
      devices: QOS_DEVICES,
      cycles,
      p50: at(50),
      p95: at(95),
      awakeMs: { p50: percentile(awake, 50), p95: percentile(awake, 95) },
      bootToProgramStartMs: { p50: percentile(programStart, 50), p95: percentile(programStart, 95) },
      bootToFirstSensorReadingMs: { p50: percentile(firstSensorReading, 50), p95: percentile(firstSensorReading, 95) },
      bootToFirstTelemetryMs: { p50: percentile(firstTelemetry, 50), p95: percentile(firstTelemetry, 95) },
      flashWritesPerCycle: {
        mean: round(flashPerCycle.reduce((a, b) => a + b, 0) / cycles),
        max: Math.max(...flashPerCycle),
      },
      bytesPerReading: round((bytesAtEnd - bytesAtStart) / readings),
      telemetryPublishBytes: round(telemetryBytes / readings),
      packetsPerCycle: round((packetsAtEnd - packetsAtStart) / cycles),
    };
  } finally {
    await fleet?.stop();
    await broker.close();
  }
}

interface FleetSizeFigures {
  devices: number;
  startMs: number;
  rssMb: number;
  rssPerDeviceMb: number;
  cpuPercentOfOneCore: number;
  readingsPerSecond: number;
}

/** Child mode: one fleet size in a fresh process (so earlier fleets do not inflate RSS). */
async function measureFleetSize(devices: number): Promise<FleetSizeFigures> {
  const flashDir = mkdtempSync(join(tmpdir(), "sim-bench-rss-"));
  const broker = await startSimBroker();
  const baseline = process.memoryUsage().rss;
  const started = Date.now();
  const fleet = await startFleet({
    devices,
    brokerUrl: broker.url,
    flashDir,
    eraseFlash: true,
    settings: { INTERVAL_S: 5 },
    timeScale: 1,
  });
  const startMs = Date.now() - started;
  let readings = 0;
  fleet.on("publish", ({ topic, dup }) => {
    if (!dup && topic.endsWith("/telemetry")) readings++;
  });
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, RSS_SETTLE_MS));
  const cpu = process.cpuUsage(cpu0);
  const elapsed = Date.now() - t0;
  const rss = process.memoryUsage().rss;
  await fleet.stop();
  await broker.close();
  rmSync(flashDir, { recursive: true, force: true });
  return {
    devices,
    startMs,
    rssMb: round(rss / 1e6),
    rssPerDeviceMb: round((rss - baseline) / 1e6 / devices),
    cpuPercentOfOneCore: round(((cpu.user + cpu.system) / 1000 / elapsed) * 100),
    readingsPerSecond: round(readings / (elapsed / 1000)),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

async function main(): Promise<void> {
  const child = process.argv.indexOf("--rss-child");
  if (child >= 0) {
    const figures = await measureFleetSize(Number(process.argv[child + 1]));
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    return;
  }
  const flashRoot = mkdtempSync(join(tmpdir(), "sim-bench-"));
  const cycles: CycleFigures[] = [];
  const runs: [ProfileName, number][] = [["esp32", 0], ["esp32", 1], ["esp32", 2], ["vm", 1]];
  for (const [profile, qos] of runs) {
    console.log(`bench: ${profile} profile, QoS ${qos}, ${QOS_DEVICES} devices × ${CYCLES_PER_DEVICE} wake cycles ...`);
    const f = await measureCycles(profile, qos, flashRoot);
    cycles.push(f);
    const s = (k: keyof WakeSplit) => `${f.p50[k]}/${f.p95[k]}`;
    console.log(
      `  p50/p95 ms: awake ${s("awakeMs")} = runtime start ${s("runtimeStartMs")} + local ${s("localMs")} + wifi ${s("wifiMs")} + ` +
        `mqtt ${s("mqttMs")} + command wait ${s("commandWaitMs")} + goodbye ${s("goodbyeMs")}; ` +
        `program start → standby without Wi-Fi ${s("programToStandbyNoWifiMs")}`,
    );
    console.log(
      `  boot→telemetry p50 ${f.bootToFirstTelemetryMs.p50} ms; ${f.bytesPerReading} B/reading on the wire (telemetry PUBLISH ` +
        `${f.telemetryPublishBytes} B, ${f.packetsPerCycle} packets/cycle); flash writes/wake mean ${f.flashWritesPerCycle.mean}, max ${f.flashWritesPerCycle.max}`,
    );
  }
  rmSync(flashRoot, { recursive: true, force: true });
  const sizes: FleetSizeFigures[] = [];
  for (const n of FLEET_SIZES) {
    console.log(`bench: ${n} devices in one process (${RSS_SETTLE_MS / 1000} s, INTERVAL_S=5, real time) ...`);
    const { stdout } = await promisify(execFile)(
      join(REPO_ROOT, "node_modules/.bin/tsx"),
      [fileURLToPath(import.meta.url), "--rss-child", String(n)],
      { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 },
    );
    const f = JSON.parse(stdout.trim().split("\n").pop()!) as FleetSizeFigures;
    sizes.push(f);
    console.log(
      `  RSS ${f.rssMb} MB (${f.rssPerDeviceMb} MB/device), CPU ${f.cpuPercentOfOneCore}% of one core, ` +
        `${f.readingsPerSecond} readings/s, start ${f.startMs} ms`,
    );
  }
  const result = {
    generatedAt: new Date().toISOString(),
    node: process.version,
    firmware: "devs/.devicescript/bin/bytecode.devs",
    method:
      `shipped embedded broker (gateway/src/broker, in memory) on loopback; INTERVAL_S=5, timeScale ${TIME_SCALE} ` +
      `for cycles; only wake cycles counted ` +
      `(boot of a new VM instance from flash → standby request); split from the firmware's "wake: times" line; ` +
      `bytes = both directions incl. CONNECT, status, DISCONNECT`,
    esp32: Object.fromEntries(cycles.filter((c) => c.profile === "esp32").map((c) => [`qos${c.qos}`, c])),
    vm: Object.fromEntries(cycles.filter((c) => c.profile === "vm").map((c) => [`qos${c.qos}`, c])),
    fleetSizes: sizes,
  };
  const out = join(REPO_ROOT, "bench-results/simulator.json");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`bench: wrote ${out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
