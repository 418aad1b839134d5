/**
 * Alerts on MQTT (docs/protocol.md "Alerts", the "MQTT" bullet): every alert change (fired, resolved,
 * acknowledged) is published retained, QoS 1, on `sleepy/alerts/<deviceId>/<ruleId>` as `{"type":"alert",
 * "alert":{…}}`, the body webhooks.ts POSTs. One retained message per device and rule holds the latest change,
 * so an automation (Home Assistant, Node-RED) triggers on the change and a late subscriber sees the current
 * state. After each (re)connection the latest change per device and rule is published again (one missed while
 * the broker was away is then right again). A deleted device's alerts are never published again:
 * devices/forget-device.ts holds the device, clear() removes its topics, and a device that no longer exists
 * (an ack after the delete) publishes nothing.
 *
 * @example
 *   const sink = new MqttAlerts(out, (deviceId) => alerts.latestPerRule(deviceId), (id) => !!transport.device(id));
 *   new Alerts({ ..., sinks: [webhooks, sink] }, ...);
 */
import type { RetainedPublisher } from "../outbound/retained-publisher.ts";
import type { AlertData } from "../protocol/events.ts";
import { alertTopic } from "../protocol/topics.ts";
import type { AlertSink } from "./alerts.ts";

/** Alerts republished per turn of the event loop after a connection. */
const REPUBLISH_CHUNK = 500;

export class MqttAlerts implements AlertSink {
  /** Devices being deleted: their alert changes are not published. */
  private readonly held = new Set<string>();

  /**
   * @param latestPerRule the newest alert of every (device, rule), of one device or (undefined) of all
   * @param isKnown whether the device exists (a deleted device's alerts are not published again)
   */
  constructor(
    private readonly out: RetainedPublisher,
    private readonly latestPerRule: (deviceId?: string) => AlertData[],
    private readonly isKnown: (deviceId: string) => boolean,
  ) {
    out.onConnect(() => this.republishAll());
  }

  /** Returns at once; never throws (RetainedPublisher.publish counts a failure). */
  send(alert: AlertData): void {
    if (this.held.has(alert.deviceId) || !this.isKnown(alert.deviceId)) return;
    this.out.publish(alertTopic(alert.deviceId, alert.ruleId), JSON.stringify({ type: "alert", alert }), "alert");
  }

  /** The device is being deleted: nothing more is published for it until forgotten() or release(). */
  hold(deviceId: string): void {
    this.held.add(deviceId);
  }

  /** Clears the retained alert of every rule that ever alerted for the device; throws unless the broker acknowledged each. */
  async clear(deviceId: string): Promise<void> {
    await Promise.all(this.latestPerRule(deviceId).map((a) => this.out.publishAcked(alertTopic(deviceId, a.ruleId), "", "alert")));
  }

  forgotten(deviceId: string): void {
    this.held.delete(deviceId);
  }

  /** The deletion failed: its latest alerts are published again. */
  release(deviceId: string): void {
    this.held.delete(deviceId);
    for (const a of this.latestPerRule(deviceId)) this.send(a);
  }

  /** The publisher is closed by its owner (gateway.ts), after the alerts. */
  async close(): Promise<void> {}

  private republishAll(): void {
    const latest = this.latestPerRule();
    const next = (from: number): void => {
      for (const a of latest.slice(from, from + REPUBLISH_CHUNK)) this.send(a);
      if (from + REPUBLISH_CHUNK < latest.length) setImmediate(() => next(from + REPUBLISH_CHUNK));
    };
    next(0);
  }
}
