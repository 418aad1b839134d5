/**
 * Regression for issue 9.1 ("a few commands brick a sensor"): 100 commands queued while the device sleeps,
 * mixed with duplicates, malformed, oversized and refused ones, with ids of the longest length the gateway
 * allows. Each valid command executes once and is acked, each bad one gets an error ack or is counted in the
 * `sleeping` status, a wake handles at most CMD_BUDGET of them (the rest wait in the broker), the `cmd` flash
 * record stays under the ESP32 runtime's read limit, and the device keeps publishing, also after a reboot.
 * Runs on the shipped broker and on Debian's Mosquitto (its in-flight window of 20 releases more as acks go out).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import mqtt from "mqtt";
import { liveEntries, parseFstor, settingReadBytes } from "../../simulator/src/fstor.ts";
import { afterEach, describe, expect, test } from "vitest";
import { mosquittoAvailable } from "../helpers/mosquitto.ts";
import { observe, startBrokerOfKind, until, type Received } from "./helpers/broker.ts";
import { runFirmware } from "./helpers/fleet.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BUDGET = 10;
/** `^[A-Za-z0-9_-]{1,40}$` (gateway/src/protocol/ids.ts COMMAND_ID_PATTERN): the longest id there is. */
const longId = (n: number) => `c-${String(n).padStart(4, "0")}-`.padEnd(40, "x");

interface Plan {
  payloads: string[];
  /** ids that must execute exactly once and be acked ok */
  valid: string[];
  /** ids that must get an ok:false ack */
  refused: string[];
  /** messages that cannot be acked (no usable id, oversized): counted by the device */
  uncountable: number;
}

function commandPlan(): Plan {
  const payloads: string[] = [];
  const valid: string[] = [];
  const refused: string[] = [];
  let uncountable = 0;
  let n = 0;
  const add = (o: unknown) => payloads.push(typeof o === "string" ? o : JSON.stringify(o));
  // the longest interval first (the biggest `iv` the record holds), back to 60 s right after
  add({ id: longId(n), op: "set-interval", seconds: 86400 });
  valid.push(longId(n++));
  for (let i = 0; payloads.length < 100; i++) {
    const kind = i % 10;
    if (kind === 0 && payloads.length === 1) {
      add({ id: longId(n), op: "set-interval", seconds: 60 });
      valid.push(longId(n++));
    } else if (kind === 3) {
      add({ id: valid[valid.length - 1], op: "ping" }); // a duplicate of the previous valid command
    } else if (kind === 5) {
      // malformed without a usable id
      add(["not json {", '{"op":"ping"}', '{"id":"bad id!","op":"ping"}', "[]", '"ping"'][(i / 10) % 5 | 0]!);
      uncountable++;
    } else if (kind === 7) {
      add({ id: longId(n), op: i % 20 === 7 ? "self-destruct" : "stay-awake", seconds: 999999 });
      refused.push(longId(n++));
    } else if (kind === 9) {
      // oversized: over the contract's 1 KB, and over the reader's 16 KB (skipped as it streams in)
      add({ id: longId(n++), op: "ping", pad: "x".repeat(i % 20 === 9 ? 2000 : 20000) });
      uncountable++;
    } else {
      add({ id: longId(n), op: "ping" });
      valid.push(longId(n++));
    }
  }
  return { payloads, valid, refused, uncountable };
}

const hasMosquitto = mosquittoAvailable();

async function flood(brokerKind: "embedded" | "mosquitto") {
  const broker = await startBrokerOfKind(brokerKind);
  cleanups.push(() => broker.close());
  const port = broker.port;
  const obs = await observe(port);
  cleanups.push(() => obs.client.endAsync());
  const id = `flood-${brokerKind}`;
  const run = await runFirmware({
    port,
    timeScale: 30,
    settings: { DEVICE_ID: id, INTERVAL_S: 60, CMD_BUDGET: BUDGET },
  });
  cleanups.push(() => run.stop());
  const limits: unknown[] = [];
  const loops: unknown[] = [];
  run.fleet.on("settings-limit" as never, (e: unknown) => limits.push(e));
  run.fleet.on("boot-loop" as never, (e: unknown) => loops.push(e));

  const plan = commandPlan();
  expect(plan.payloads).toHaveLength(100);
  // first wake done: the session and its cmd subscription exist; queue everything while it sleeps
  await new Promise<void>((resolve) => run.fleet.once("standby", () => resolve()));
  const sender = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `sender-${id}`, clean: true });
  cleanups.push(() => sender.endAsync());
  for (const p of plan.payloads) await sender.publishAsync(`sensors/${id}/cmd`, p, { qos: 1 });

  const acks = () => obs.messages.filter((m) => m.topic === `sensors/${id}/cmd/ack`);
  const sleeping = () => obs.messages.filter((m) => m.topic === `sensors/${id}/status` && m.body?.state === "sleeping");
  const rejected = () => sleeping().reduce((n, m) => n + (m.body.rejected ?? 0), 0);
  await until(
    "every command acked or counted",
    () => {
      const acked = new Set(acks().map((m) => m.body.id));
      return plan.valid.every((c) => acked.has(c)) && plan.refused.every((c) => acked.has(c)) && rejected() >= plan.uncountable;
    },
    240_000,
  );

  for (const c of plan.valid) {
    const mine = acks().filter((m) => m.body.id === c);
    expect(mine.length, c).toBeGreaterThanOrEqual(1);
    expect(mine.every((m) => m.body.ok === true), c).toBe(true);
    // executed once: the firmware logs "command <id>: <op>" when it applies one
    expect(run.logs.filter((l) => l.includes(`command ${c}: `)), c).toHaveLength(1);
  }
  for (const c of plan.refused) {
    const mine = acks().filter((m) => m.body.id === c);
    expect(mine.every((m) => m.body.ok === false && typeof m.body.error === "string"), c).toBe(true);
  }
  expect(rejected()).toBe(plan.uncountable);

  // the budget: no wake handled more than CMD_BUDGET; the flood took several wakes, nothing was lost
  const handledPerWake = () =>
    run.logs
      .map((l) => /wake: commands (\d+) handled, (\d+) deferred/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
  await until("the last flood wake reported", () => handledPerWake().reduce((a, b) => a + b, 0) >= 100, 60_000);
  const perWake = handledPerWake();
  expect(Math.max(...perWake)).toBeLessThanOrEqual(BUDGET);
  expect(perWake.filter((n) => n > 0).length).toBeGreaterThanOrEqual(Math.ceil(100 / BUDGET));

  // the device keeps publishing, also after a reboot reads the cmd record back
  const seqs = (ms: Received[]) => ms.filter((m) => m.topic === `sensors/${id}/telemetry`).map((m) => m.body.seq as number);
  const before = Math.max(...seqs(obs.messages));
  await sender.publishAsync(`sensors/${id}/cmd`, JSON.stringify({ id: longId(999), op: "reboot" }), { qos: 1 });
  await until("reboot acked", () => acks().some((m) => m.body.id === longId(999)), 60_000);
  await until("2 readings after the reboot", () => Math.max(...seqs(obs.messages)) >= before + 3, 90_000);
  const all = seqs(obs.messages);
  const unique = [...new Set(all)].sort((a, b) => a - b);
  expect(unique).toEqual(Array.from({ length: unique.length }, (_, i) => i + 1));

  // the worst case the flood built (14 hashed 40-character ids, the interval at its widest): under the limit
  const device = run.fleet.devices[0]!;
  const store = parseFstor(readFileSync(join(run.flashDir, `${device.hardwareId}.flash`)));
  const cmd = store && liveEntries(store).get(":cmd");
  expect(cmd, "the cmd record in flash").toBeDefined();
  const cmdBytes = settingReadBytes(cmd!)!;
  console.log(`cmd record after the flood: ${cmdBytes} bytes read back (limit 232)`);
  expect(cmdBytes).toBeLessThanOrEqual(232);
  expect(limits, "settings records over the ESP32 read limit").toEqual([]);
  expect(loops, "boot loops").toEqual([]);
  expect(run.fleet.devices[0]!.boots).toBeGreaterThan(10);
}

describe("a flood of commands while the device sleeps", () => {
  test("shipped broker: 100 mixed commands, each valid one once, the rest refused or counted", async () => {
    await flood("embedded");
  }, 420_000);

  test.skipIf(!hasMosquitto)("Mosquitto: the same flood", async () => {
    await flood("mosquitto");
  }, 420_000);
});
