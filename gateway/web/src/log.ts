import { lateText } from "./devices.ts";
import type { StreamEvent } from "./types.ts";

const KEEP = 50;

/** What a person calls a device: its name when it has one (with the id in parentheses), else its id. */
export type DeviceLabel = (deviceId: string) => string;

function describe(ev: StreamEvent, label: DeviceLabel): string {
  switch (ev.kind) {
    case "telemetry": {
      const values = Object.entries(ev.data.readings).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`);
      const late = lateText(ev.data);
      return `${label(ev.data.deviceId)} #${ev.data.seq} ${values.join(" ")}${late === "" ? "" : ` (${late})`}`;
    }
    case "status":
      return `${label(ev.data.deviceId)} ${ev.data.state}`;
    case "command":
      return `${label(ev.data.deviceId)} ${ev.data.op} ${ev.data.commandId} ${ev.data.state}`;
    case "command-ack":
      return `${label(ev.data.deviceId)} ${ev.data.op} ${ev.data.commandId} ${ev.data.ok ? "ok" : `failed: ${ev.data.error}`}`;
    case "summary":
      return `${label(ev.data.deviceId)} ${ev.data.buckets.length} summary bucket${ev.data.buckets.length === 1 ? "" : "s"} updated`;
    case "alert": {
      const a = ev.data;
      const what = a.state === "resolved" ? "resolved" : a.ackedAt !== null ? `acknowledged by ${a.ackedBy ?? "?"}` : "firing";
      return `${label(a.deviceId)} ${a.ruleName || a.ruleId} ${what}: ${a.message}`;
    }
    case "device": {
      const { deviceId, name, location } = ev.data;
      return `${deviceId} ${name === null ? "has no name" : `named “${name}”`}${location === null ? "" : `, at “${location}”`}`;
    }
    case "reset":
      return `history reset from #${ev.data.requestedId} to #${ev.data.earliestId}`;
  }
}

/** The most recent events that pass the filter, newest first. */
export class EventLog {
  constructor(
    private readonly list: HTMLOListElement,
    private readonly label: DeviceLabel = (id) => id,
  ) {}

  add(ev: StreamEvent): void {
    const li = document.createElement("li");
    li.dataset.eventId = String(ev.id);
    li.dataset.kind = ev.kind;
    if ("deviceId" in ev.data) li.dataset.deviceId = ev.data.deviceId;
    const kind = document.createElement("span");
    kind.className = `kind kind-${ev.kind}`;
    kind.textContent = ev.kind;
    li.append(`#${ev.id} `, kind, ` ${describe(ev, this.label)}`);
    this.list.prepend(li);
    while (this.list.children.length > KEEP) this.list.lastElementChild!.remove();
  }

  clear(): void {
    this.list.replaceChildren();
  }
}
