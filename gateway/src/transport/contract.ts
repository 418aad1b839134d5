/**
 * The contract every Transport implementation must pass, written against the interface only (transport.ts),
 * the way aedes-persistence ships abstract.js for its stores. An implementation's test file calls
 * `transportContract(name, harness)`; transport/sqlite/transport.test.ts is the first.
 */
import { createParser } from "eventsource-parser";
import { afterEach, describe, expect, it } from "vitest";
import type { StatusData, StoredKind, TelemetryData } from "../protocol/events.ts";
import { deviceTopic } from "../protocol/topics.ts";
import { WebStreamSink } from "./hub/sink.ts";
import { ErrTransportClosed, type NewEvent, type Transport } from "./transport.ts";

export interface TransportHarness {
  transport: Transport;
  /** Applies retention so that only the newest `keep` events stay (the implementation's own trimming). */
  trim(keep: number): void | Promise<void>;
  /** Closes this instance and opens a new one on the same storage (a restart). */
  reopen(): Promise<TransportHarness>;
  /** Releases the storage; called once per test. */
  dispose(): Promise<void>;
}

export interface HarnessOptions {
  /** SSE hub limits small enough to exercise paging in replay. */
  replayPageSize: number;
}

export const telemetry = (deviceId: string, seq: number, at = 1_000_000 + seq, opts: Partial<TelemetryData> = {}): NewEvent => {
  const topic = deviceTopic(deviceId, "telemetry");
  const data: TelemetryData = {
    deviceId, topic, seq, boot: 1, t: at, age: null, timeSource: "received", receivedAt: at,
    readings: { temperature: seq }, battery: 3.7, dropped: 0, corrupt: 0, ...opts,
  };
  return { kind: "telemetry", topic, deviceId, receivedAt: data.receivedAt, seq, t: data.t, data };
};

export const status = (deviceId: string, state: StatusData["state"], at: number, sleepMs: number | null = null): NewEvent => {
  const topic = deviceTopic(deviceId, "status");
  const data: StatusData = { deviceId, topic, state, sleepMs, nextWakeAt: sleepMs === null ? null : at + sleepMs, receivedAt: at };
  return { kind: "status", topic, deviceId, receivedAt: at, data };
};

interface Received {
  id: number;
  kind: StoredKind | "reset";
  data: Record<string, unknown>;
}

/** An SSE stream opened on the transport, read the way a browser would. */
class Stream {
  readonly events: Received[] = [];
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private done = false;

  constructor(transport: Transport, request: { filters?: string[]; lastEventId?: number } = {}) {
    const sink = new WebStreamSink();
    transport.subscribe({ filters: request.filters ?? ["#"], lastEventId: request.lastEventId }, sink);
    const reader = (this.reader = sink.body.getReader());
    const parser = createParser({
      onEvent: (e) => this.events.push({ id: Number(e.id), kind: e.event as Received["kind"], data: JSON.parse(e.data) }),
    });
    const decoder = new TextDecoder();
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
      this.done = true;
    })();
  }

  get ended(): boolean {
    return this.done;
  }

  async until(pred: (events: Received[]) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (!pred(this.events)) {
      if (Date.now() > deadline) throw new Error(`stream: timed out waiting for ${what}; got ${JSON.stringify(this.events.map((e) => e.id))}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  cancel(): void {
    void this.reader.cancel().catch(() => {});
  }
}

export function transportContract(name: string, open: (opts: HarnessOptions) => Promise<TransportHarness>): void {
  describe(`Transport contract: ${name}`, () => {
    const live: TransportHarness[] = [];
    const streams: Stream[] = [];
    const start = async (opts: Partial<HarnessOptions> = {}) => {
      const h = await open({ replayPageSize: 4, ...opts });
      live.push(h);
      return h;
    };
    const stream = (t: Transport, request?: { filters?: string[]; lastEventId?: number }) => {
      const s = new Stream(t, request);
      streams.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of streams.splice(0)) s.cancel();
      for (const h of live.splice(0)) await h.dispose();
    });

    it("assigns strictly increasing ids; a duplicate reading resolves undefined and takes no id", async () => {
      const { transport } = await start();
      const a = await transport.dispatch(telemetry("d1", 1));
      const b = await transport.dispatch(telemetry("d1", 2));
      expect(await transport.dispatch(telemetry("d1", 1))).toBeUndefined();
      const c = await transport.dispatch(telemetry("d2", 1)); // same seq, other device: another reading
      const d = await transport.dispatch(status("d1", "online", 2_000_000));
      const ids = [a, b, c, d].map((e) => e!.id);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      expect(new Set(ids).size).toBe(4);
      expect(ids[3]! - ids[0]!).toBe(3); // the duplicate did not burn an id
      expect(JSON.parse(a!.data)).toMatchObject({ deviceId: "d1", seq: 1 });
    });

    it("tells onStored listeners of every stored event once, in id order, duplicates not; a removed listener hears nothing", async () => {
      const { transport } = await start();
      const heard: Array<[string, number]> = [];
      const remove = transport.onStored((event, stored) => heard.push([event.kind, stored.id]));
      const a = await transport.dispatch(telemetry("d1", 1));
      await transport.dispatch(telemetry("d1", 1));
      const b = await transport.dispatch(status("d1", "sleeping", 2_000_000, 60_000));
      remove();
      await transport.dispatch(telemetry("d1", 2));
      expect(heard).toEqual([
        ["telemetry", a!.id],
        ["status", b!.id],
      ]);
    });

    it("streams live events to a subscriber, filtered by MQTT topic filters", async () => {
      const { transport } = await start();
      const all = stream(transport);
      const onlyD2 = stream(transport, { filters: ["sensors/d2/#"] });
      await transport.dispatch(telemetry("d1", 1));
      await transport.dispatch(telemetry("d2", 1));
      await transport.dispatch(status("d2", "sleeping", 2_000_000, 60_000));
      await all.until((e) => e.length === 3, "3 events");
      await onlyD2.until((e) => e.length === 2, "2 events of d2");
      expect(all.events.map((e) => e.kind)).toEqual(["telemetry", "telemetry", "status"]);
      expect(onlyD2.events.every((e) => e.data.deviceId === "d2")).toBe(true);
    });

    it("replays after Last-Event-ID across pages, then goes live: every id once, in order", async () => {
      const { transport } = await start({ replayPageSize: 3 });
      for (let s = 1; s <= 10; s++) await transport.dispatch(telemetry("d", s));
      const resumed = stream(transport, { lastEventId: 4 });
      // Events dispatched while the replay is still reading pages must be neither lost nor doubled.
      for (let s = 11; s <= 15; s++) await transport.dispatch(telemetry("d", s));
      await resumed.until((e) => e.length === 11, "ids 5..15");
      expect(resumed.events.map((e) => e.id)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
      expect(resumed.events.map((e) => e.data.seq)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    });

    it("sends `reset` first when the Last-Event-ID was trimmed, then replays what is left", async () => {
      const h = await start();
      for (let s = 1; s <= 8; s++) await h.transport.dispatch(telemetry("d", s));
      await h.trim(3);
      const resumed = stream(h.transport, { lastEventId: 2 });
      await resumed.until((e) => e.length === 4, "reset + 3 events");
      expect(resumed.events[0]).toMatchObject({ kind: "reset", data: { reason: "history_evicted", requestedId: 2, earliestId: 6 } });
      expect(resumed.events.slice(1).map((e) => e.id)).toEqual([6, 7, 8]);
      // Resuming from the reset's own id does not reset again.
      const again = stream(h.transport, { lastEventId: resumed.events[0]!.id });
      await again.until((e) => e.length === 3, "3 events");
      expect(again.events.map((e) => e.kind)).toEqual(["telemetry", "telemetry", "telemetry"]);
    });

    it("sends `reset` for an id it never assigned (e.g. a wiped store)", async () => {
      const { transport } = await start();
      await transport.dispatch(telemetry("d", 1));
      const s = stream(transport, { lastEventId: 99 });
      await s.until((e) => e.length === 2, "reset + replay from the start");
      expect(s.events[0]).toMatchObject({ kind: "reset", data: { reason: "unknown_id", requestedId: 99 } });
      expect(s.events[1]).toMatchObject({ kind: "telemetry", data: { seq: 1 } });
    });

    it("orders readings by the time they were taken, then seq, and filters on from/to/since", async () => {
      const { transport } = await start();
      const at = (seq: number, receivedAt: number, t: number) => telemetry("d", seq, receivedAt, { t, timeSource: "age" });
      await transport.dispatch(at(1, 10_000, 10_000));
      await transport.dispatch(at(2, 11_000, 11_000));
      await transport.dispatch(at(3, 12_000, 5_000)); // waited 7 s in the outbox: taken before seq 1
      await transport.dispatch(at(4, 13_000, 11_000)); // same t as seq 2: seq decides
      await transport.dispatch(telemetry("other", 1));
      const seqs = (q: Parameters<Transport["readings"]>[1], limit = 100) =>
        transport.readings("d", q, limit).map((e) => (JSON.parse(e.data) as TelemetryData).seq);
      expect(seqs({})).toEqual([3, 1, 2, 4]);
      expect(seqs({}, 2)).toEqual([2, 4]); // the latest by reading time, not by arrival
      expect(seqs({ from: 5_000, to: 10_000 })).toEqual([3, 1]);
      expect(seqs({ since: 12_000 })).toEqual([3, 4]);
      expect(seqs({ since: 12_000, from: 6_000 })).toEqual([4]);
    });

    it("derives device state with the shared reducer (protocol/device-state.ts)", async () => {
      const { transport } = await start();
      await transport.dispatch(telemetry("d", 5, 1_000, { battery: 3.9 }));
      expect(transport.device("d")).toMatchObject({ status: "online", battery: 3.9, lastSeen: 1_000, lastReading: { seq: 5 } });
      await transport.dispatch(status("d", "sleeping", 2_000, 60_000));
      expect(transport.device("d")).toMatchObject({ status: "sleeping", nextWakeAt: 62_000, statusAt: 2_000 });
      // A late, older reading is stored but changes neither the last reading nor the battery; it arrived
      // after the status, so it says the device is awake, whatever its (stepped) receivedAt.
      await transport.dispatch(telemetry("d", 3, 1_500, { battery: 3.1 }));
      expect(transport.device("d")).toMatchObject({ status: "online", statusAt: 1_500, battery: 3.9, lastSeen: 2_000, lastReading: { seq: 5 } });
      await transport.dispatch(status("d", "sleeping", 1_600, 60_000));
      expect(transport.device("d")).toMatchObject({ status: "sleeping", nextWakeAt: 61_600 });
      await transport.dispatch(telemetry("d", 6, 3_000, { battery: null }));
      expect(transport.device("d")).toMatchObject({ status: "online", nextWakeAt: null, battery: null, lastReading: { seq: 6 } });
      expect(transport.devices().map((d) => d.deviceId)).toEqual(["d"]);
      expect(transport.device("nobody")).toBeUndefined();
    });

    it("keeps ids, de-duplication and device state across a restart, and never reuses an id", async () => {
      const first = await start();
      for (let s = 1; s <= 5; s++) await first.transport.dispatch(telemetry("d", s));
      await first.trim(2);
      const second = await first.reopen();
      live.splice(live.indexOf(first), 1, second);
      expect(await second.transport.dispatch(telemetry("d", 5))).toBeUndefined();
      expect((await second.transport.dispatch(telemetry("d", 6)))!.id).toBe(6);
      expect(second.transport.device("d")).toMatchObject({ lastReading: { seq: 6 } });
    });

    it("close() ends every stream and refuses new streams and events", async () => {
      const { transport } = await start();
      const s = stream(transport);
      await transport.dispatch(telemetry("d", 1));
      await s.until((e) => e.length === 1, "1 event");
      await transport.close();
      await s.until(() => s.ended, "the stream to end");
      expect(() => stream(transport)).toThrow(ErrTransportClosed);
      await expect(transport.dispatch(telemetry("d", 2))).rejects.toThrow(ErrTransportClosed);
      await transport.close(); // idempotent
    });
  });
}
