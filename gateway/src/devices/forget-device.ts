/**
 * DELETE /api/devices/:id: forgets a device everywhere the gateway put it. Everything on the broker goes first,
 * each removal acknowledged by the broker (a removal dropped while disconnected would leave the device in Home
 * Assistant for good): its Home Assistant entities before their state (so no live entity loses its values),
 * its retained alerts, then its retained status (else a resubscription would bring the device back). Only then
 * the local state: its firing alerts resolve, its row goes. While this runs the device is held: nothing is
 * published for it, so a reading arriving meanwhile cannot bring an entity back; it is forgotten with the device.
 * When the broker fails (not connected, no acknowledgement in time) nothing local is deleted, what was removed
 * is published again, and the caller gets the error (HTTP 503).
 *
 * @example
 *   const forget = deviceForgetter({ transport, bridge, alerts, homeAssistant, mqttAlerts, out });
 *   await forget("kitchen-1"); // true: forgotten; false: no such device; throws: the broker did not acknowledge
 */
import type { Alerts } from "../alerts/alerts.ts";
import type { MqttAlerts } from "../alerts/mqtt-alerts.ts";
import type { MqttBridge } from "../bridge/mqtt-client.ts";
import type { HomeAssistant } from "../homeassistant/home-assistant.ts";
import { ErrPublisherDisconnected, type RetainedPublisher } from "../outbound/retained-publisher.ts";
import { deviceTopic } from "../protocol/topics.ts";
import type { Transport } from "../transport/transport.ts";

export interface ForgetDeviceDeps {
  transport: Pick<Transport, "device" | "forgetDevice">;
  bridge: Pick<MqttBridge, "clearRetained">;
  alerts: Pick<Alerts, "resolveDevice">;
  /** The outbound publisher and what publishes through it, when Home Assistant or MQTT alerts are on. */
  out?: Pick<RetainedPublisher, "connected">;
  homeAssistant?: Pick<HomeAssistant, "hold" | "clear" | "forgotten" | "release">;
  mqttAlerts?: Pick<MqttAlerts, "hold" | "clear" | "forgotten" | "release">;
}

export function deviceForgetter(deps: ForgetDeviceDeps): (deviceId: string) => Promise<boolean> {
  const { transport, bridge, alerts, out, homeAssistant, mqttAlerts } = deps;
  return async (deviceId) => {
    if (!transport.device(deviceId)) return false;
    if (out && !out.connected) throw new ErrPublisherDisconnected();
    homeAssistant?.hold(deviceId);
    mqttAlerts?.hold(deviceId);
    try {
      await homeAssistant?.clear(deviceId);
      await mqttAlerts?.clear(deviceId);
      await bridge.clearRetained(deviceTopic(deviceId, "status"));
    } catch (err) {
      homeAssistant?.release(deviceId);
      mqttAlerts?.release(deviceId);
      throw err;
    }
    await alerts.resolveDevice(deviceId);
    const forgotten = await transport.forgetDevice(deviceId); // an event: every replica of Redis mode forgets it
    homeAssistant?.forgotten(deviceId);
    mqttAlerts?.forgotten(deviceId);
    return forgotten;
  };
}
