import { getDevices, getReadings } from "./api.ts";
import { DeviceChart } from "./charts.ts";
import { CommandPanel } from "./commands.ts";
import { applyDeviceEvent, DeviceCard, mergeDeviceView, newDevice, type DeviceState } from "./devices.ts";
import { deviceVisible, eventVisible, type ViewFilter } from "./filter.ts";
import type { EventLog } from "./log.ts";
import type { DeviceSummary, StreamEvent } from "./types.ts";

interface Device {
  state: DeviceState;
  card: DeviceCard;
  chart: DeviceChart;
  commands: CommandPanel;
}

/**
 * The page's model and views: one card per device (fields, chart, commands), fed by the REST history
 * and by stream events. Every input is idempotent (charts key points by seq, states only move forward),
 * so history loads may overlap live events in any order.
 */
export class Dashboard {
  private readonly devices = new Map<string, Device>();
  private filter: ViewFilter = { device: "", topic: "#" };
  /** The newest event id this tab has seen, from its own stream or from the leader tab. */
  lastEventId: number | null = null;
  eventsSeen = 0;

  constructor(
    private readonly grid: HTMLElement,
    private readonly empty: HTMLElement,
    private readonly log: EventLog,
    private readonly historyMs: number,
  ) {}

  handle(ev: StreamEvent): void {
    // Same rule as the stream: ids only grow, except that a reset may rewind them.
    if (ev.kind !== "reset" && this.lastEventId !== null && ev.id <= this.lastEventId) return;
    this.lastEventId = ev.id;
    this.eventsSeen++;
    this.grid.dataset.events = String(this.eventsSeen);
    this.grid.dataset.lastEventId = String(ev.id);
    if (eventVisible(this.filter, ev)) this.log.add(ev);
    const now = Date.now();
    switch (ev.kind) {
      case "telemetry": {
        const d = this.device(ev.data.deviceId);
        applyDeviceEvent(d.state, ev);
        d.chart.add(ev.data);
        d.card.render(d.state, now);
        break;
      }
      case "status": {
        const d = this.device(ev.data.deviceId);
        applyDeviceEvent(d.state, ev);
        d.card.render(d.state, now);
        break;
      }
      case "command":
        this.device(ev.data.deviceId).commands.applyCommand(ev.data);
        break;
      case "command-ack":
        this.device(ev.data.deviceId).commands.applyAck(ev.data);
        break;
      case "reset":
        // Events between our last id and earliestId are gone from the stream: refill charts from REST.
        void this.loadHistory();
        break;
    }
  }

  /** Device list and recent readings from REST; throws the ApiError (e.g. 401) of the device list. */
  async loadHistory(): Promise<void> {
    const summaries = await getDevices();
    for (const s of summaries) this.mergeSummary(s);
    // The chart's time axis is when readings were taken: ask for those taken in the window.
    const from = Date.now() - this.historyMs;
    await Promise.all(summaries.map((s) => this.loadReadings(s.deviceId, from)));
  }

  setFilter(f: ViewFilter): void {
    this.filter = f;
    for (const [id, d] of this.devices) d.card.root.hidden = !deviceVisible(f, id);
    this.updateEmpty();
  }

  /** Re-renders what depends on the clock: countdowns and "last seen". */
  tick(): void {
    const now = Date.now();
    for (const d of this.devices.values()) d.card.render(d.state, now);
  }

  /** Charts read colours from CSS: redraw them when light/dark changes. */
  restyle(): void {
    for (const d of this.devices.values()) d.chart.rebuild();
  }

  private async loadReadings(deviceId: string, from: number): Promise<void> {
    const chart = this.device(deviceId).chart;
    // The gateway answers the latest READINGS_PAGE readings taken since `from`: the recent end of the chart.
    for (const r of await getReadings(deviceId, from)) chart.add(r);
  }

  private mergeSummary(s: DeviceSummary): void {
    const existing = this.devices.get(s.deviceId);
    if (existing === undefined) {
      const d = this.device(s.deviceId, { ...s });
      d.card.render(d.state, Date.now());
      return;
    }
    mergeDeviceView(existing.state, s);
    existing.card.render(existing.state, Date.now());
  }

  private device(deviceId: string, initial?: DeviceState): Device {
    let d = this.devices.get(deviceId);
    if (d !== undefined) return d;
    const card = new DeviceCard(deviceId);
    d = {
      state: initial ?? newDevice(deviceId),
      card,
      chart: new DeviceChart(card.chartSlot, deviceId),
      commands: new CommandPanel(card.commandsSlot, deviceId),
    };
    this.devices.set(deviceId, d);
    card.root.hidden = !deviceVisible(this.filter, deviceId);
    // Keep cards sorted by id so the focus order is stable while devices appear.
    const next = [...this.devices.keys()].sort().find((id) => id > deviceId);
    this.grid.insertBefore(card.root, next === undefined ? null : this.devices.get(next)!.card.root);
    this.updateEmpty();
    return d;
  }

  private updateEmpty(): void {
    const visible = [...this.devices.values()].filter((d) => !d.card.root.hidden).length;
    this.empty.hidden = visible > 0;
    this.empty.textContent = this.devices.size === 0 ? "No devices yet." : "No device matches the filter.";
    this.grid.dataset.devices = String(this.devices.size);
  }
}
