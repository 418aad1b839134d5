/**
 * Device state as a reducer over events: the one rule for "what is this device doing", applied by the gateway
 * when it stores an event (transport/sqlite/devices.ts) and by the web page to the events it streams
 * (gateway/web/src/devices.ts), so the two always agree. Pure and dependency-free: the page bundles it.
 *
 * The rules:
 * - status: the latest report wins, by event id (the gateway's arrival order, which a wall-clock step on a
 *   Pi without a real-time clock cannot reorder); a reading also proves the device is awake (`online`).
 * - lastReading and battery: from the reading with the highest seq; a late, older reading never replaces
 *   them (it is still stored and drawn at its own time). `battery` is that reading's, null when it sent none.
 * - lastSeen: the latest receivedAt of anything the device sent.
 * - overdue: an `alert` event of kind overdue that fires is a status of its own (by event id, like the others);
 *   the device's next report ends it. Its resolution changes nothing when that report came first; resolved
 *   without one (the rule was turned off), the device is `sleeping` again.
 * - name and location: the latest `device` event (a person set them).
 */
import type { AlertData, DeviceMetaData, DeviceStatus, ReadingTime, StatusData, TelemetryData } from "./events.ts";

export interface LastReading extends ReadingTime {
  seq: number;
  receivedAt: number;
  readings: Record<string, number>;
}

/** GET /api/devices item. */
export interface DeviceView {
  deviceId: string;
  /** Set by a person; null: show the id. */
  name: string | null;
  location: string | null;
  status: DeviceStatus;
  /** When a sleeping (or overdue) device said it would wake; null otherwise. */
  nextWakeAt: number | null;
  /** receivedAt of the event the status comes from (0: none yet). */
  statusAt: number;
  /** Id of that event (0: none yet); an earlier event never overrides it. */
  statusEventId: number;
  lastSeen: number | null;
  battery: number | null;
  lastReading: LastReading | null;
}

/** Every DeviceStatus, in the order of the docs (Home Assistant's enum options, the sensor_status gauge). */
export const DEVICE_STATUSES = ["online", "sleeping", "overdue", "offline", "unknown"] as const satisfies readonly DeviceStatus[];

/** A stored event that changes device state, with its id. */
export type DeviceEvent =
  | { id: number; kind: "telemetry"; data: TelemetryData }
  | { id: number; kind: "status"; data: StatusData }
  | { id: number; kind: "alert"; data: AlertData }
  | { id: number; kind: "device"; data: DeviceMetaData };

/** Whether an event of this kind can change device state (the others never do). */
export function changesDevice(kind: string): kind is DeviceEvent["kind"] {
  return kind === "telemetry" || kind === "status" || kind === "alert" || kind === "device";
}

export function newDevice(deviceId: string): DeviceView {
  return { deviceId, name: null, location: null, status: "unknown", nextWakeAt: null, statusAt: 0, statusEventId: 0, lastSeen: null, battery: null, lastReading: null };
}

/** Applies one event to `d` in place. */
export function applyDeviceEvent(d: DeviceView, event: DeviceEvent): void {
  if (event.kind === "device") {
    d.name = event.data.name;
    d.location = event.data.location;
    return;
  }
  if (event.kind === "alert") {
    const a = event.data;
    if (a.kind !== "overdue" || event.id <= d.statusEventId) return;
    if (a.state === "firing" && d.status === "sleeping") d.status = "overdue";
    // resolved with no report in between (its rule was turned off): back to what the device last said
    else if (a.state === "resolved" && d.status === "overdue") d.status = "sleeping";
    else return;
    d.statusEventId = event.id;
    return;
  }
  const at = event.data.receivedAt;
  d.lastSeen = Math.max(d.lastSeen ?? 0, at);
  if (event.id > d.statusEventId) {
    d.status = event.kind === "status" ? event.data.state : "online";
    d.nextWakeAt = event.kind === "status" && event.data.state === "sleeping" ? event.data.nextWakeAt : null;
    d.statusAt = at;
    d.statusEventId = event.id;
  }
  if (event.kind === "status") return;
  const t = event.data;
  if (d.lastReading === null || t.seq > d.lastReading.seq) {
    d.lastReading = { seq: t.seq, t: t.t, age: t.age, timeSource: t.timeSource, receivedAt: t.receivedAt, readings: t.readings };
    d.battery = t.battery;
  }
}

/** Merges a snapshot of the same device (e.g. GET /api/devices after a reconnect) without going back in time. */
export function mergeDeviceView(d: DeviceView, s: DeviceView): void {
  d.name = s.name;
  d.location = s.location;
  if (s.statusEventId > d.statusEventId) {
    d.status = s.status;
    d.nextWakeAt = s.nextWakeAt;
    d.statusAt = s.statusAt;
    d.statusEventId = s.statusEventId;
  }
  if (s.lastReading !== null && (d.lastReading === null || s.lastReading.seq > d.lastReading.seq)) {
    d.lastReading = s.lastReading;
    d.battery = s.battery;
  }
  d.lastSeen = Math.max(d.lastSeen ?? 0, s.lastSeen ?? 0) || null;
}
