import { lateText } from "./devices.ts";
import type { StreamEvent } from "./types.ts";

const KEEP = 50;

function describe(ev: StreamEvent): string {
  switch (ev.kind) {
    case "telemetry": {
      const values = Object.entries(ev.data.readings).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`);
      const late = lateText(ev.data);
      return `${ev.data.deviceId} #${ev.data.seq} ${values.join(" ")}${late === "" ? "" : ` (${late})`}`;
    }
    case "status":
      return `${ev.data.deviceId} ${ev.data.state}`;
    case "command":
      return `${ev.data.deviceId} ${ev.data.op} ${ev.data.commandId} ${ev.data.state}`;
    case "command-ack":
      return `${ev.data.deviceId} ${ev.data.op} ${ev.data.commandId} ${ev.data.ok ? "ok" : `failed: ${ev.data.error}`}`;
    case "reset":
      return `history reset from #${ev.data.requestedId} to #${ev.data.earliestId}`;
  }
}

/** The most recent events that pass the filter, newest first. */
export class EventLog {
  constructor(private readonly list: HTMLOListElement) {}

  add(ev: StreamEvent): void {
    const li = document.createElement("li");
    li.dataset.eventId = String(ev.id);
    li.dataset.kind = ev.kind;
    const kind = document.createElement("span");
    kind.className = `kind kind-${ev.kind}`;
    kind.textContent = ev.kind;
    li.append(`#${ev.id} `, kind, ` ${describe(ev)}`);
    this.list.prepend(li);
    while (this.list.children.length > KEEP) this.list.lastElementChild!.remove();
  }

  clear(): void {
    this.list.replaceChildren();
  }
}
