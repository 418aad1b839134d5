import type { EventKind, StreamEvent } from "./types.ts";

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === "string" && v.length > 0;

/**
 * Turns one SSE message into a typed event, or null when it lacks what the page indexes by
 * (the caller counts those). Only the keys used as identities are checked: deviceId, seq, commandId, and a
 * reading's time `t`, which places it on its chart.
 *
 * @example parseEvent("telemetry", "12", '{"deviceId":"d1","seq":3,...}')
 */
export function parseEvent(kind: EventKind, lastEventId: string, json: string): StreamEvent | null {
  const id = Number(lastEventId);
  if (!Number.isSafeInteger(id) || id < 0) return null;
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    return null;
  }
  if (!isRecord(data)) return null;
  switch (kind) {
    case "telemetry":
      // `t` places the reading on its chart's time axis.
      if (!isStr(data.deviceId) || !isNum(data.seq) || !isRecord(data.readings) || !isNum(data.receivedAt) || !isNum(data.t)) {
        return null;
      }
      break;
    case "status":
      if (!isStr(data.deviceId) || !isStr(data.state)) return null;
      break;
    case "command-ack":
    case "command":
      if (!isStr(data.deviceId) || !isStr(data.commandId)) return null;
      break;
    case "summary":
      // Buckets are keyed by metric, step and start.
      if (!isStr(data.deviceId) || !Array.isArray(data.buckets)) return null;
      if (!data.buckets.every((b) => isRecord(b) && isStr(b.metric) && isStr(b.step) && isNum(b.start) && isNum(b.count))) return null;
      break;
    case "alert":
      if (!isNum(data.alertId) || !isStr(data.deviceId) || !isStr(data.state) || !isNum(data.updatedAt)) return null;
      break;
    case "device":
      if (!isStr(data.deviceId)) return null;
      break;
    case "reset":
      break;
  }
  // Checked above: the fields used as identities; the rest is the gateway's contract.
  return { id, kind, data } as unknown as StreamEvent;
}

/** The moment the gateway saw the event, used to tell replayed (missed) events from live ones. */
export function eventTime(ev: StreamEvent): number | null {
  switch (ev.kind) {
    case "telemetry":
    case "status":
    case "command-ack":
      return ev.data.receivedAt;
    case "command":
    case "summary":
    case "device":
      return ev.data.at;
    case "alert":
      return ev.data.updatedAt;
    case "reset":
      return null;
  }
}
