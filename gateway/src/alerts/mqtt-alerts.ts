/**
 * Alerts on MQTT (docs/protocol.md "Alerts", the "MQTT" bullet): every alert change (fired, resolved,
 * acknowledged) is published retained, QoS 1, on `sleepy/alerts/<deviceId>/<ruleId>` as `{"type":"alert",
 * "alert":{…}}`, the body webhooks.ts POSTs. One retained message per device and rule holds the latest change,
 * so an automation (Home Assistant, Node-RED) triggers on the change and a late subscriber sees the current
 * state. After each (re)connection the latest change per device and rule is published again (one missed while
 * the broker was away is then right again). forget() clears a deleted device's topics.
 *
 * @example
 *   const sink = new MqttAlerts(out, (deviceId) => alerts.list({ state: "all", deviceId, limit: 10_000 }), (id) => !!transport.device(id));
 *   new Alerts({ ..., sinks: [webhooks, sink] }, ...);
 */
import type { GatewayPublisher } from "../bridge/publisher.ts";
import type { AlertData } from "../protocol/events.ts";
import { alertTopic } from "../protocol/topics.ts";
import type { AlertSink } from "./alerts.ts";

export class MqttAlerts implements AlertSink {
  /**
   * @param alertsOf newest first, of one device or (undefined) of all
   * @param isKnown whether the device exists (a deleted device's alerts are not published again)
   */
  constructor(private readonly out: GatewayPublisher, private readonly alertsOf: (deviceId?: string) => AlertData[], isKnown: (deviceId: string) => boolean) {
    out.onConnect(() => {
      const latest = new Map<string, AlertData>();
      for (const a of alertsOf()) {
        const topic = alertTopic(a.deviceId, a.ruleId);
        if (!latest.has(topic) && isKnown(a.deviceId)) latest.set(topic, a);
      }
      for (const a of latest.values()) this.send(a);
    });
  }

  /** Returns at once; never throws (GatewayPublisher.publish counts a failure). */
  send(alert: AlertData): void {
    this.out.publish(alertTopic(alert.deviceId, alert.ruleId), JSON.stringify({ type: "alert", alert }), "alert");
  }

  /** Clears the retained alert of every rule that ever alerted for the device. */
  forget(deviceId: string): void {
    for (const ruleId of new Set(this.alertsOf(deviceId).map((a) => a.ruleId))) this.out.publish(alertTopic(deviceId, ruleId), "", "alert");
  }

  /** The publisher is closed by its owner (gateway.ts), after the alerts. */
  async close(): Promise<void> {}
}
