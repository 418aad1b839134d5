import { summaryValues } from "../../src/summaries/series.ts";
import { ActiveAlerts, AlertBook, DeviceAlertHistory } from "./alerts.ts";
import { ackAlert, ApiError, exportUrl, getAlerts, getDevices, getSeries, patchDevice } from "./api.ts";
import { BATTERY_METRICS, DeviceChart, type ChartLoad, type ChartWindow } from "./charts.ts";
import { CommandPanel } from "./commands.ts";
import { applyDeviceEvent, DeviceCard, displayName, mergeDeviceView, newDevice, type DeviceMetaInput, type DeviceState } from "./devices.ts";
import { deviceVisible, eventVisible, type ViewFilter } from "./filter.ts";
import type { EventLog } from "./log.ts";
import { rangeKey, rangeWindow, type Range } from "./range.ts";
import type { AlertData, DeviceSummary, SeriesAnswer, SeriesStep, StreamEvent } from "./types.ts";

interface Device {
  state: DeviceState;
  card: DeviceCard;
  chart: DeviceChart;
  /** The small battery chart under it: hidden while it holds no battery value. */
  battery: DeviceChart;
  alerts: DeviceAlertHistory;
  commands: CommandPanel;
}

/** Steps from fine to coarse: two metrics answered in different steps are drawn in the coarser one. */
const STEP_ORDER: SeriesStep[] = ["raw", "1m", "1h", "1d"];

/**
 * The page's model and views: one card per device (fields, chart, alert history, commands) and the active
 * alerts, fed by REST (devices, series, alerts) and by stream events. Every input is idempotent (charts key
 * points by seq or bucket start, alerts by id and update time, states only move forward), so loads may overlap
 * live events in any order.
 */
export class Dashboard {
  private readonly devices = new Map<string, Device>();
  private filter: ViewFilter = { device: "", topic: "#" };
  private readonly book = new AlertBook();
  private readonly active: ActiveAlerts;
  /** Set once the first history load answered: devices that appear later load their own chart. */
  private historyReady = false;
  /** The session's write right (GET api/session); null until known: nothing that writes is offered meanwhile. */
  private writable: boolean | null = null;
  /** The newest event id this tab has seen, from its own stream or from the leader tab. */
  lastEventId: number | null = null;
  eventsSeen = 0;

  constructor(
    private readonly grid: HTMLElement,
    private readonly empty: HTMLElement,
    private readonly log: EventLog,
    private range: Range,
    alerts: { list: HTMLElement; empty: HTMLElement; announcer: HTMLElement },
  ) {
    this.active = new ActiveAlerts(alerts.list, alerts.empty, alerts.announcer, this.book, (id) => this.label(id), (id) => this.acknowledge(id));
    this.active.render();
  }

  /** "Kitchen (a1b2…)" when the device has a name, else its id: for the log and the alerts. */
  label(deviceId: string): string {
    const d = this.devices.get(deviceId)?.state;
    return d === undefined || d.name === null ? deviceId : `${d.name} (${deviceId})`;
  }

  handle(ev: StreamEvent): void {
    // Same rule as the stream: ids only grow, except that a reset may rewind them.
    if (ev.kind !== "reset" && this.lastEventId !== null && ev.id <= this.lastEventId) return;
    this.lastEventId = ev.id;
    this.eventsSeen++;
    this.grid.dataset.events = String(this.eventsSeen);
    this.grid.dataset.lastEventId = String(ev.id);
    const now = Date.now();
    switch (ev.kind) {
      case "telemetry": {
        const d = this.device(ev.data.deviceId);
        applyDeviceEvent(d.state, ev);
        // The values the gateway summarises (every reading key, and `battery`): each chart takes its own.
        const r = { seq: ev.data.seq, t: ev.data.t, readings: Object.fromEntries(summaryValues(ev.data)) };
        d.chart.add(r);
        d.battery.add(r);
        d.card.render(d.state, now);
        break;
      }
      case "status": {
        const d = this.device(ev.data.deviceId);
        applyDeviceEvent(d.state, ev);
        d.card.render(d.state, now);
        break;
      }
      case "summary": {
        const d = this.device(ev.data.deviceId);
        d.chart.addBuckets(ev.data.buckets);
        d.battery.addBuckets(ev.data.buckets);
        break;
      }
      case "alert": {
        const d = this.device(ev.data.deviceId);
        applyDeviceEvent(d.state, ev);
        d.card.render(d.state, now);
        const before = this.book.get(ev.data.alertId);
        if (this.addAlert(ev.data)) this.active.announce(ev.data, before);
        break;
      }
      case "device": {
        if (ev.data.deleted) {
          this.forget(ev.data.deviceId);
          break;
        }
        const d = this.device(ev.data.deviceId);
        applyDeviceEvent(d.state, ev);
        this.renamed(d);
        break;
      }
      case "command":
        this.device(ev.data.deviceId).commands.applyCommand(ev.data);
        break;
      case "command-ack":
        this.device(ev.data.deviceId).commands.applyAck(ev.data);
        break;
      case "reset":
        // Events between our last id and earliestId are gone from the stream: refill from REST.
        void this.loadHistory();
        break;
    }
    // Summaries change buckets many times a minute: they are drawn, not listed.
    if (ev.kind !== "summary" && eventVisible(this.filter, ev, this.namesOf(ev))) this.log.add(ev);
  }

  /** Devices, the active alerts and every chart's series from REST; throws the ApiError (e.g. 401) of the device list. */
  async loadHistory(): Promise<void> {
    const summaries = await getDevices();
    for (const s of summaries) this.mergeSummary(s);
    this.historyReady = true;
    await Promise.all([this.loadAlerts(), ...[...this.devices.keys()].map((id) => this.loadChart(id))]);
  }

  /** Shows another range: every chart loads it. */
  setRange(r: Range): void {
    this.range = r;
    for (const id of this.devices.keys()) void this.loadChart(id);
  }

  setFilter(f: ViewFilter): void {
    this.filter = f;
    for (const d of this.devices.values()) this.applyFilter(d);
    this.updateEmpty();
  }

  /** What the session may do: with the write right (or in open mode) acknowledging, renaming and commands are offered. */
  setWrite(write: boolean | null): void {
    if (write === this.writable) return;
    this.writable = write;
    this.active.setWritable(write);
    for (const d of this.devices.values()) this.applyWrite(d);
  }

  private applyWrite(d: Device): void {
    d.card.setWritable(this.writable);
    d.commands.setWritable(this.writable);
  }

  /** Re-renders what depends on the clock: countdowns, "last seen", "since", a live range's window. */
  tick(): void {
    const now = Date.now();
    for (const d of this.devices.values()) {
      d.card.render(d.state, now);
      d.chart.slide(now);
      d.battery.slide(now);
    }
    this.active.render(now);
  }

  /** Charts read colours from CSS: redraw them when light/dark changes. */
  restyle(): void {
    for (const d of this.devices.values()) {
      d.chart.rebuild();
      d.battery.rebuild();
    }
  }

  private async loadAlerts(): Promise<void> {
    try {
      for (const a of await getAlerts({ state: "firing", limit: 1000 })) this.book.upsert(a);
    } catch (err) {
      // A token that may read devices may still lack the alerts: the rest of the page works.
      if (!(err instanceof ApiError)) throw err;
      console.warn("alerts not loaded", err);
    }
    this.renderAlerts();
  }

  private addAlert(a: AlertData): boolean {
    if (!this.book.upsert(a)) return false;
    this.renderAlerts(a.deviceId);
    return true;
  }

  private renderAlerts(deviceId?: string): void {
    this.active.render();
    for (const [id, d] of this.devices) {
      if (deviceId !== undefined && id !== deviceId) continue;
      d.alerts.render();
      d.card.root.dataset.alertsFiring = String(this.book.forDevice(id).filter((a) => a.state === "firing").length);
    }
  }

  private async acknowledge(alertId: number): Promise<void> {
    void this.addAlert(await ackAlert(alertId));
  }

  /**
   * Loads the charts of one device for the current range: temperature and humidity in one step, and the
   * battery in that same step (so both charts show the same kind of points, and the caption and CSV hold for both).
   */
  private async loadChart(deviceId: string): Promise<void> {
    const { chart, battery } = this.device(deviceId);
    const w = rangeWindow(this.range);
    const win: ChartWindow = { ...w, key: rangeKey(this.range) };
    const gen = chart.beginLoad(win);
    const batteryGen = battery.beginLoad(win);
    // Asked at once; asked again below should the gateway pick another step for it.
    const batteryAuto = getSeries(deviceId, BATTERY_METRICS[0]!.key, w.from, w.to);
    batteryAuto.catch(() => undefined); // awaited (and reported) below
    let step: SeriesStep;
    try {
      const load = await this.loadSeries(deviceId, chart.metricKeys, w);
      step = load.step;
      chart.finishLoad(gen, load);
    } catch (err) {
      console.error(`series of ${deviceId} not loaded`, err);
      chart.failLoad(gen);
      battery.failLoad(batteryGen);
      return;
    }
    try {
      battery.finishLoad(batteryGen, await this.loadSeries(deviceId, battery.metricKeys, w, step, [await batteryAuto]));
    } catch (err) {
      console.error(`battery of ${deviceId} not loaded`, err);
      battery.failLoad(batteryGen);
    }
  }

  /**
   * `metrics` over the window, all in one step: `step` when given, else the coarsest the gateway picks for any
   * of them (it picks each metric's step alone: a finer answer is asked again in the coarser step).
   * `answered`: auto answers already at hand, in the order of `metrics`.
   */
  private async loadSeries(
    deviceId: string,
    metrics: string[],
    w: { from: number; to: number },
    step?: SeriesStep,
    answered?: SeriesAnswer[],
  ): Promise<ChartLoad> {
    const answers = answered ?? (await Promise.all(metrics.map((m) => getSeries(deviceId, m, w.from, w.to))));
    const shown = step ?? STEP_ORDER[Math.max(...answers.map((a) => STEP_ORDER.indexOf(a.step)))]!;
    const series: ChartLoad["series"] = {};
    await Promise.all(
      answers.map(async (a, i) => {
        const m = metrics[i]!;
        series[m] = a.step === shown ? a : await getSeries(deviceId, m, w.from, w.to, shown);
      }),
    );
    const first = answers[0]!;
    return { step: shown, from: first.from, to: first.to, series };
  }

  private mergeSummary(s: DeviceSummary): void {
    const existing = this.devices.get(s.deviceId);
    if (existing === undefined) {
      const d = this.device(s.deviceId, { ...s, name: s.name ?? null, location: s.location ?? null });
      d.card.render(d.state, Date.now());
      return;
    }
    const before = [existing.state.name, existing.state.location];
    mergeDeviceView(existing.state, { ...s, name: s.name ?? null, location: s.location ?? null });
    if (before[0] !== existing.state.name || before[1] !== existing.state.location) this.renamed(existing);
    else existing.card.render(existing.state, Date.now());
  }

  /** Name or location changed: the card, the alerts naming the device, the filter (which matches names). */
  private renamed(d: Device): void {
    d.card.render(d.state, Date.now());
    this.applyFilter(d);
    this.updateEmpty();
    this.active.render();
    // The card order follows what people read: the name, else the id.
    this.place(d);
  }

  private async saveMeta(deviceId: string, meta: DeviceMetaInput): Promise<void> {
    let s: DeviceSummary;
    try {
      s = await patchDevice(deviceId, meta);
    } catch (err) {
      throw err instanceof ApiError ? new Error(`${err.message} (${err.code})`) : err;
    }
    const d = this.device(deviceId);
    d.state.name = s.name ?? null;
    d.state.location = s.location ?? null;
    this.renamed(d);
  }

  private applyFilter(d: Device): void {
    d.card.root.hidden = !deviceVisible(this.filter, d.state.deviceId, [d.state.name, d.state.location]);
  }

  private namesOf(ev: StreamEvent): (string | null)[] {
    if (!("deviceId" in ev.data)) return [];
    const d = this.devices.get(ev.data.deviceId)?.state;
    return d === undefined ? [] : [d.name, d.location];
  }

  private device(deviceId: string, initial?: DeviceState): Device {
    let d = this.devices.get(deviceId);
    if (d !== undefined) return d;
    const card = new DeviceCard(deviceId, (meta) => this.saveMeta(deviceId, meta));
    const chart = new DeviceChart(card.chartSlot, deviceId, {
      onShown: (step, from, to) => card.showChart(step, DeviceChart.stepText(step), exportUrl(deviceId, from, to, step)),
    });
    const battery = new DeviceChart(card.batterySlot, deviceId, { metrics: BATTERY_METRICS, height: 130, hideWhenEmpty: true, rightGutter: true });
    // A live range's export ends now, not when the chart was loaded.
    card.csvLink.addEventListener("click", () => {
      const w = rangeWindow(this.range);
      card.csvLink.href = exportUrl(deviceId, w.from, w.to, chart.shownStep);
    });
    const created: Device = {
      state: initial ?? newDevice(deviceId),
      card,
      chart,
      battery,
      alerts: new DeviceAlertHistory(card.alertsSlot, deviceId, this.book, () => this.renderAlerts()),
      commands: new CommandPanel(card.commandsSlot, deviceId),
    };
    this.devices.set(deviceId, created);
    this.applyWrite(created);
    this.applyFilter(created);
    this.place(created);
    this.updateEmpty();
    if (this.historyReady) void this.loadChart(deviceId);
    return created;
  }

  /** A device deleted on the gateway (DELETE /api/devices/:id): its card goes; a later report brings a new one. */
  private forget(deviceId: string): void {
    const d = this.devices.get(deviceId);
    if (d === undefined) return;
    d.card.root.remove();
    this.devices.delete(deviceId);
    this.updateEmpty();
  }

  /** Keeps cards sorted by what they show (name, else id), so the focus order is stable while devices appear. */
  private place(d: Device): void {
    const key = (x: Device) => `${displayName(x.state).toLowerCase()}\u0000${x.state.deviceId}`;
    const mine = key(d);
    let next: Device | undefined;
    for (const x of this.devices.values()) {
      if (x === d || key(x) <= mine) continue;
      if (next === undefined || key(x) < key(next)) next = x;
    }
    const before = next === undefined ? null : next.card.root;
    if (d.card.root.parentNode !== this.grid || d.card.root.nextSibling !== before) this.grid.insertBefore(d.card.root, before);
  }

  private updateEmpty(): void {
    const visible = [...this.devices.values()].filter((d) => !d.card.root.hidden).length;
    this.empty.hidden = visible > 0;
    this.empty.textContent = this.devices.size === 0 ? "No devices yet." : "No device matches the filter.";
    this.grid.dataset.devices = String(this.devices.size);
  }
}
