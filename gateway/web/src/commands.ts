import { COMMAND_SECONDS } from "../../src/protocol/commands.ts";
import { ApiError, postCommand, type CommandRequest } from "./api.ts";
import type { CommandAckData, CommandData, CommandOp } from "./types.ts";

type ShownState = "sending" | "queued" | "delivered" | "acked" | "failed";

/** States only move forward: a replayed or late event never takes a command back. */
const RANK: Record<ShownState, number> = { sending: 0, queued: 1, delivered: 2, acked: 3, failed: 3 };
const KEEP = 10;

const LIMITS: Record<keyof typeof COMMAND_SECONDS, { min: number; max: number; value: number; label: string }> = {
  "set-interval": { ...COMMAND_SECONDS["set-interval"], value: 300, label: "Set interval" },
  "stay-awake": { ...COMMAND_SECONDS["stay-awake"], value: 60, label: "Stay awake" },
};

interface Shown {
  op: string;
  state: ShownState;
  trail: ShownState[];
  li: HTMLLIElement;
}

/**
 * Per-device command form (set-interval, stay-awake) and the live state of each command: queued until
 * the device wakes, then delivered and acked (or failed), from `command` and `command-ack` events.
 * Each list item carries data-command-id, data-state and data-trail (states seen, in order).
 */
export class CommandPanel {
  private readonly shown = new Map<string, Shown>();
  private readonly form: HTMLFormElement;
  private readonly list: HTMLUListElement;
  private readonly error: HTMLElement;

  constructor(
    slot: HTMLElement,
    private readonly deviceId: string,
  ) {
    const p = `cmd-${deviceId}`;
    slot.innerHTML = `
      <form class="command-form" novalidate>
        <fieldset>
          <legend>Command</legend>
          <label for="${p}-op">Action</label>
          <select id="${p}-op" name="op">
            <option value="set-interval">${LIMITS["set-interval"].label}</option>
            <option value="stay-awake">${LIMITS["stay-awake"].label}</option>
          </select>
          <label for="${p}-s">Seconds</label>
          <input id="${p}-s" name="seconds" type="number" inputmode="numeric" required>
          <button type="submit">Send</button>
        </fieldset>
        <p class="error" role="alert"></p>
      </form>
      <ul class="command-list" aria-live="polite" aria-label="Commands sent to ${deviceId}"></ul>`;
    const form = slot.querySelector("form")!;
    this.form = form;
    form.hidden = true; // until the session's write right is known (setWritable)
    const op = form.querySelector("select")!;
    const seconds = form.querySelector("input")!;
    this.list = slot.querySelector("ul")!;
    this.error = slot.querySelector(".error")!;
    const applyLimits = () => {
      const l = LIMITS[op.value as keyof typeof LIMITS];
      seconds.min = String(l.min);
      seconds.max = String(l.max);
      seconds.value = String(l.value);
    };
    op.addEventListener("change", applyLimits);
    applyLimits();
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const l = LIMITS[op.value as keyof typeof LIMITS];
      const n = Number(seconds.value);
      if (!Number.isInteger(n) || n < l.min || n > l.max) {
        this.error.textContent = `Seconds must be a whole number from ${l.min} to ${l.max}.`;
        seconds.focus();
        return;
      }
      this.error.textContent = "";
      void this.send({ op: op.value as CommandOp, seconds: n });
    });
  }

  /** The session's write right (null: not known yet): the form is offered only with it; the list always shows. */
  setWritable(write: boolean | null): void {
    this.form.hidden = write !== true;
  }

  applyCommand(d: CommandData): void {
    this.update(d.commandId, d.op, d.state);
  }

  applyAck(d: CommandAckData): void {
    this.update(d.commandId, d.op, d.ok ? "acked" : "failed", d.error ?? undefined);
  }

  private async send(cmd: CommandRequest): Promise<void> {
    try {
      const res = await postCommand(this.deviceId, cmd);
      this.update(res.id, cmd.op, "queued");
    } catch (err) {
      const msg = err instanceof ApiError ? `${err.message} (${err.code})` : String(err);
      this.error.textContent = `Command not sent: ${msg}`;
    }
  }

  private update(id: string, op: string, state: ShownState, error?: string): void {
    let s = this.shown.get(id);
    if (s === undefined) {
      const li = document.createElement("li");
      li.dataset.commandId = id;
      this.list.prepend(li);
      s = { op, state: "sending", trail: [], li };
      this.shown.set(id, s);
      this.trim();
    }
    if (RANK[state] < RANK[s.state] || s.trail.includes(state)) return;
    s.state = state;
    s.trail.push(state);
    s.li.dataset.state = state;
    s.li.dataset.trail = s.trail.join(" ");
    s.li.textContent = `${s.op}: ${s.trail.join(" → ")}${error ? ` (${error})` : ""}`;
  }

  private trim(): void {
    for (const [id, s] of this.shown) {
      if (this.shown.size <= KEEP) break;
      s.li.remove();
      this.shown.delete(id);
    }
  }
}
