// Device state on the page: the gateway's own reducer (gateway/src/protocol/device-state.ts) applied to the
// events the page streams, so a card always says what GET /api/devices would.
import type { DeviceView as DeviceState } from "../../src/protocol/device-state.ts";
import { formatMoment } from "./timeaxis.ts";

export {
  applyDeviceEvent,
  mergeDeviceView,
  newDevice,
  type DeviceView as DeviceState,
} from "../../src/protocol/device-state.ts";

export function duration(ms: number): string {
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

/** Local date and time of a moment, to the minute: "Jan 12 08:56". */
export function clock(ms: number): string {
  return formatMoment(ms).slice(0, -3);
}

/** What a person calls the device: its name, else its id. */
export const displayName = (d: { deviceId: string; name: string | null }): string => d.name ?? d.deviceId;

export function statusText(d: DeviceState, now: number): string {
  if (d.status === "overdue") {
    if (d.nextWakeAt === null) return "overdue";
    return `overdue · was due at ${clock(d.nextWakeAt)} (${duration(now - d.nextWakeAt)} ago)`;
  }
  if (d.status !== "sleeping" || d.nextWakeAt === null) return d.status;
  const left = d.nextWakeAt - now;
  return left >= 0 ? `sleeping · wakes in ${duration(left)}` : `sleeping · was due ${duration(left)} ago`;
}

const fmt = (v: number | undefined, unit: string, digits = 1) =>
  typeof v === "number" && Number.isFinite(v) ? `${v.toFixed(digits)} ${unit}` : "–";

type FieldName =
  | "name"
  | "location"
  | "deviceId"
  | "status"
  | "lastSeen"
  | "battery"
  | "batteryHint"
  | "temperature"
  | "humidity"
  | "seq"
  | "takenAt"
  | "late"
  | "step"
  | "csv"
  | "readOnly";

/** What the edit form sends: trimmed, "" means cleared. */
export interface DeviceMetaInput {
  name: string | null;
  location: string | null;
}

/**
 * The card of one device: its name (or its id) and location, its fields, and slots for its chart, its alert
 * history and its commands. Ids in the markup are derived from the device id, which the protocol restricts
 * to [A-Za-z0-9_-].
 */
export class DeviceCard {
  readonly root: HTMLElement;
  readonly chartSlot: HTMLElement;
  readonly batterySlot: HTMLElement;
  readonly alertsSlot: HTMLElement;
  readonly commandsSlot: HTMLElement;
  readonly csvLink: HTMLAnchorElement;
  private readonly fields: Record<FieldName, HTMLElement>;
  private readonly edit: HTMLDetailsElement;
  private readonly editForm: HTMLFormElement;
  private readonly editError: HTMLElement;
  private editing = false;

  constructor(
    readonly deviceId: string,
    /** Saves name and location (PATCH); rejects with a message for the form. */
    private readonly onSave: (meta: DeviceMetaInput) => Promise<void> = async () => undefined,
  ) {
    const root = document.createElement("article");
    const p = `dev-${deviceId}`;
    root.className = "device";
    root.dataset.deviceId = deviceId;
    root.setAttribute("aria-labelledby", `${p}-h`);
    root.innerHTML = `
      <header class="device-head">
        <div class="device-title">
          <h3 id="${p}-h" data-field="name"></h3>
          <p class="device-meta"><span data-field="location"></span><span class="device-id">id <code data-field="deviceId"></code></span></p>
        </div>
        <span class="status" data-field="status"></span>
      </header>
      <details class="device-edit" hidden>
        <summary>Name and location</summary>
        <form novalidate>
          <div><label for="${p}-name">Name</label><input id="${p}-name" name="name" maxlength="64" autocomplete="off"></div>
          <div><label for="${p}-loc">Location</label><input id="${p}-loc" name="location" maxlength="64" autocomplete="off"></div>
          <button type="submit">Save</button>
          <p class="error" role="alert"></p>
        </form>
      </details>
      <p class="readonly-hint" data-field="readOnly" hidden>read-only token: no renaming, no commands</p>
      <dl class="fields">
        <div><dt>Last seen</dt><dd data-field="lastSeen"></dd></div>
        <div><dt>Battery</dt><dd data-field="battery"></dd><dd class="hint" data-field="batteryHint"></dd></div>
        <div><dt>Temperature</dt><dd data-field="temperature"></dd></div>
        <div><dt>Humidity</dt><dd data-field="humidity"></dd></div>
        <div><dt title="The device numbers its readings 1, 2, 3…: the number of its newest reading">Last reading no.</dt><dd data-field="seq"></dd></div>
        <div><dt>Taken</dt><dd data-field="takenAt"></dd></div>
      </dl>
      <p class="late-hint" data-field="late" hidden></p>
      <div class="chart-bar"><span class="chart-step" data-field="step"></span><a class="csv" data-field="csv" download>Download CSV</a></div>
      <div class="chart" role="img"></div>
      <div class="battery-chart" role="img" hidden></div>
      <div class="alerts-slot"></div>
      <div class="commands"></div>`;
    const field = (name: string) => root.querySelector<HTMLElement>(`[data-field="${name}"]`)!;
    const names: FieldName[] = ["name", "location", "deviceId", "status", "lastSeen", "battery", "batteryHint", "temperature", "humidity", "seq", "takenAt", "late", "step", "csv", "readOnly"];
    this.fields = Object.fromEntries(names.map((n) => [n, field(n)])) as Record<FieldName, HTMLElement>;
    this.fields.deviceId.textContent = deviceId;
    this.chartSlot = root.querySelector<HTMLElement>(".chart")!;
    this.batterySlot = root.querySelector<HTMLElement>(".battery-chart")!;
    this.alertsSlot = root.querySelector<HTMLElement>(".alerts-slot")!;
    this.commandsSlot = root.querySelector<HTMLElement>(".commands")!;
    this.csvLink = this.fields.csv as HTMLAnchorElement;
    this.edit = root.querySelector<HTMLDetailsElement>(".device-edit")!;
    this.editForm = this.edit.querySelector("form")!;
    this.editError = this.editForm.querySelector<HTMLElement>(".error")!;
    this.edit.addEventListener("toggle", () => {
      this.editing = this.edit.open;
      if (this.edit.open) this.editForm.querySelector<HTMLInputElement>("input")!.focus();
    });
    this.editForm.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
    this.root = root;
  }

  /**
   * The session's write right (null: not known yet). Without it the "Name and location" form is not offered
   * (the gateway would refuse the PATCH) and a hint says why; the commands follow the same right (CommandPanel).
   */
  setWritable(write: boolean | null): void {
    this.edit.hidden = write !== true;
    if (write !== true && this.edit.open) this.edit.open = false;
    this.fields.readOnly.hidden = write !== false;
  }

  private input(name: "name" | "location"): HTMLInputElement {
    return this.editForm.elements.namedItem(name) as HTMLInputElement;
  }

  private async save(): Promise<void> {
    const value = (n: "name" | "location") => this.input(n).value.trim() || null;
    const button = this.editForm.querySelector("button")!;
    button.disabled = true;
    this.editError.textContent = "";
    try {
      await this.onSave({ name: value("name"), location: value("location") });
      this.edit.open = false;
      this.editing = false;
    } catch (err) {
      this.editError.textContent = `Not saved: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      button.disabled = false;
    }
  }

  /** Caption and CSV link of the chart: the step shown, and the export of exactly that. */
  showChart(step: string, stepText: string, csvHref: string): void {
    this.fields.step.textContent = stepText;
    this.fields.step.dataset.step = step;
    this.csvLink.href = csvHref;
  }

  render(d: DeviceState, now: number): void {
    this.root.dataset.status = d.status;
    const f = this.fields;
    // Name and location: shown instead of the id (which stays visible as a detail).
    if (f.name.textContent !== displayName(d)) f.name.textContent = displayName(d);
    f.name.classList.toggle("is-id", d.name === null);
    f.location.textContent = d.location ?? "";
    f.location.hidden = d.location === null;
    // The id as a detail under a name; a card without a name already shows it as its title.
    f.deviceId.parentElement!.hidden = d.name === null;
    this.root.dataset.name = d.name ?? "";
    this.root.dataset.location = d.location ?? "";
    this.chartSlot.setAttribute("aria-label", `Temperature and humidity of ${displayName(d)} over time`);
    this.batterySlot.setAttribute("aria-label", `Battery voltage of ${displayName(d)} over time`);
    if (!this.editing) {
      this.input("name").value = d.name ?? "";
      this.input("location").value = d.location ?? "";
    }
    f.status.textContent = statusText(d, now);
    f.status.dataset.status = d.status;
    this.root.dataset.nextWakeAt = d.nextWakeAt === null ? "" : String(d.nextWakeAt);
    f.lastSeen.textContent = d.lastSeen === null ? "never" : `${duration(now - d.lastSeen)} ago`;
    f.lastSeen.title = d.lastSeen === null ? "" : new Date(d.lastSeen).toLocaleString();
    f.battery.textContent = fmt(d.battery ?? undefined, "V", 2);
    // "–" alone says nothing: say why there is no value.
    const batteryHint = d.battery !== null ? "" : d.lastReading === null ? "no reading yet" : "no battery sensor reported";
    f.batteryHint.textContent = batteryHint;
    f.batteryHint.hidden = batteryHint === "";
    f.battery.title = batteryHint;
    f.temperature.textContent = fmt(d.lastReading?.readings.temperature, "°C");
    f.humidity.textContent = fmt(d.lastReading?.readings.humidity, "%");
    f.seq.textContent = d.lastReading === null ? "–" : String(d.lastReading.seq);
    f.seq.title = d.lastReading === null ? "no reading yet" : "";
    this.root.dataset.lastSeq = d.lastReading === null ? "" : String(d.lastReading.seq);
    // The last reading at its own time, which is not its arrival when it waited in the device's outbox.
    const r = d.lastReading;
    f.takenAt.textContent = r === null ? "–" : now >= r.t ? `${duration(now - r.t)} ago` : `${duration(r.t - now)} ahead`;
    f.takenAt.title = r === null ? "no reading yet" : `${new Date(r.t).toLocaleString()} (${TIME_SOURCE_TEXT[r.timeSource] ?? r.timeSource})`;
    const late = r === null ? "" : lateText(r);
    f.late.textContent = late;
    f.late.hidden = late === "";
    this.root.dataset.readingT = r === null ? "" : String(r.t);
    this.root.dataset.timeSource = r === null ? "" : r.timeSource;
  }
}
