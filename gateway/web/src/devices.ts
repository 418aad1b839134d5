// Device state on the page: the gateway's own reducer (gateway/src/protocol/device-state.ts) applied to the
// events the page streams, so a card always says what GET /api/devices would.
import type { DeviceView as DeviceState } from "../../src/protocol/device-state.ts";

export {
  applyDeviceEvent,
  mergeDeviceView,
  newDevice,
  type DeviceView as DeviceState,
} from "../../src/protocol/device-state.ts";

function duration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A reading that reached the gateway later than this after it was taken gets a hint on its card. */
export const LATE_HINT_MS = 60_000;

/** "taken 1 h 2 min before it arrived" when the reading waited (e.g. in the device's outbox), else "". */
export function lateText(r: { t: number; receivedAt: number }): string {
  const late = r.receivedAt - r.t;
  return late > LATE_HINT_MS ? `taken ${duration(late)} before it arrived` : "";
}

const TIME_SOURCE_TEXT = { device: "device clock", age: "device age", received: "arrival time" } as const;

export function statusText(d: DeviceState, now: number): string {
  if (d.status !== "sleeping" || d.nextWakeAt === null) return d.status;
  const left = d.nextWakeAt - now;
  return left >= 0 ? `sleeping · wakes in ${duration(left)}` : `sleeping · wake overdue by ${duration(left)}`;
}

const fmt = (v: number | undefined, unit: string, digits = 1) =>
  typeof v === "number" && Number.isFinite(v) ? `${v.toFixed(digits)} ${unit}` : "–";

/**
 * The card of one device: its fields, and slots for its chart and its commands. Ids in the markup are
 * derived from the device id, which the protocol restricts to [A-Za-z0-9_-].
 */
export class DeviceCard {
  readonly root: HTMLElement;
  readonly chartSlot: HTMLElement;
  readonly commandsSlot: HTMLElement;
  private readonly fields: Record<
    "status" | "lastSeen" | "battery" | "temperature" | "humidity" | "seq" | "takenAt" | "late",
    HTMLElement
  >;

  constructor(readonly deviceId: string) {
    const root = document.createElement("article");
    root.className = "device";
    root.dataset.deviceId = deviceId;
    root.setAttribute("aria-labelledby", `dev-${deviceId}-h`);
    root.innerHTML = `
      <header class="device-head">
        <h3 id="dev-${deviceId}-h"></h3>
        <span class="status" data-field="status"></span>
      </header>
      <dl class="fields">
        <div><dt>Last seen</dt><dd data-field="lastSeen"></dd></div>
        <div><dt>Battery</dt><dd data-field="battery"></dd></div>
        <div><dt>Temperature</dt><dd data-field="temperature"></dd></div>
        <div><dt>Humidity</dt><dd data-field="humidity"></dd></div>
        <div><dt>Reading #</dt><dd data-field="seq"></dd></div>
        <div><dt>Taken</dt><dd data-field="takenAt"></dd></div>
      </dl>
      <p class="late-hint" data-field="late" hidden></p>
      <div class="chart" role="img"></div>
      <div class="commands"></div>`;
    root.querySelector("h3")!.textContent = deviceId;
    const field = (name: string) => root.querySelector<HTMLElement>(`[data-field="${name}"]`)!;
    this.fields = {
      status: field("status"),
      lastSeen: field("lastSeen"),
      battery: field("battery"),
      temperature: field("temperature"),
      humidity: field("humidity"),
      seq: field("seq"),
      takenAt: field("takenAt"),
      late: field("late"),
    };
    this.chartSlot = root.querySelector<HTMLElement>(".chart")!;
    this.chartSlot.setAttribute("aria-label", `Temperature and humidity of ${deviceId} over time`);
    this.commandsSlot = root.querySelector<HTMLElement>(".commands")!;
    this.root = root;
  }

  render(d: DeviceState, now: number): void {
    this.root.dataset.status = d.status;
    const f = this.fields;
    f.status.textContent = statusText(d, now);
    f.status.dataset.status = d.status;
    f.lastSeen.textContent = d.lastSeen === null ? "never" : `${duration(now - d.lastSeen)} ago`;
    f.lastSeen.title = d.lastSeen === null ? "" : new Date(d.lastSeen).toLocaleString();
    f.battery.textContent = fmt(d.battery ?? undefined, "V", 2);
    f.temperature.textContent = fmt(d.lastReading?.readings.temperature, "°C");
    f.humidity.textContent = fmt(d.lastReading?.readings.humidity, "%");
    f.seq.textContent = d.lastReading === null ? "–" : String(d.lastReading.seq);
    this.root.dataset.lastSeq = d.lastReading === null ? "" : String(d.lastReading.seq);
    // The last reading at its own time, which is not its arrival when it waited in the device's outbox.
    const r = d.lastReading;
    f.takenAt.textContent = r === null ? "–" : now >= r.t ? `${duration(now - r.t)} ago` : `${duration(r.t - now)} ahead`;
    f.takenAt.title = r === null ? "" : `${new Date(r.t).toLocaleString()} (${TIME_SOURCE_TEXT[r.timeSource] ?? r.timeSource})`;
    const late = r === null ? "" : lateText(r);
    f.late.textContent = late;
    f.late.hidden = late === "";
    this.root.dataset.readingT = r === null ? "" : String(r.t);
    this.root.dataset.timeSource = r === null ? "" : r.timeSource;
  }
}
