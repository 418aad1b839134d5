/**
 * Home Assistant MQTT discovery (docs/protocol.md "Home Assistant"): keeps, for every device, its retained
 * discovery configurations (discovery.ts) and its retained state (state.ts) on the broker.
 * - a stored event that changes a device → its state is republished; its configurations only when they
 *   changed (a new reading key, battery, name or location);
 * - every (re)connection of the publisher, and Home Assistant's birth message (`<prefix>/status` = `online`,
 *   sent when Home Assistant starts) → everything is republished (retained, so this is idempotent);
 * - forget(id) (DELETE /api/devices/:id) → empty retained payloads remove the entities and the state.
 *
 * @example
 *   const ha = new HomeAssistant({ out, transport, alertsFiring: (id) => alerts.firingCount(id), log }, options);
 *   ha.forget(transport.device("kitchen-1")!); // before the device is forgotten
 *   ha.close();
 */
import type { GatewayPublisher } from "../bridge/publisher.ts";
import type { Logger } from "../ops/log.ts";
import { changesDevice, type DeviceView } from "../protocol/device-state.ts";
import { deviceStateTopic } from "../protocol/topics.ts";
import type { Transport } from "../transport/transport.ts";
import { discoveryConfigs, type DiscoveryOptions } from "./discovery.ts";
import { deviceStatePayload } from "./state.ts";

export interface HomeAssistantDeps {
  out: GatewayPublisher;
  transport: Transport;
  /** Alerts firing for a device now (the `problem` entity). */
  alertsFiring: (deviceId: string) => number;
  log: Logger;
}

export class HomeAssistant {
  /** Per device, the configurations last published (topic → JSON), to publish only what changed. */
  private readonly published = new Map<string, Map<string, string>>();
  private readonly stopListening: () => void;
  private closed = false;

  constructor(private readonly deps: HomeAssistantDeps, private readonly opts: DiscoveryOptions) {
    this.stopListening = deps.transport.onStored((event) => {
      if (!this.closed && changesDevice(event.kind)) this.guard(() => this.update(event.deviceId, false));
    });
    deps.out.onConnect(() => this.republishAll());
    deps.out.onMessage(`${opts.prefix}/status`, (payload) => {
      if (payload.toString() === "online") {
        deps.log.info("Home Assistant started (birth message): republishing discovery");
        this.republishAll();
      }
    });
  }

  /** Publishes every device's configurations and state again. */
  republishAll(): void {
    if (this.closed) return;
    this.guard(() => {
      for (const d of this.deps.transport.devices()) this.publishDevice(d, true);
    });
  }

  /** Removes the device's entities and state from the broker (and so from Home Assistant); `d` as it was. */
  forget(d: DeviceView): void {
    const deviceId = d.deviceId;
    // what was published, and what may have been by an earlier run (a battery entity included)
    const everything = discoveryConfigs({ ...d, battery: d.battery ?? 0 }, this.opts).map((c) => c.topic);
    const topics = new Set([...(this.published.get(deviceId)?.keys() ?? []), ...everything]);
    for (const topic of topics) this.deps.out.publish(topic, "", "ha_discovery");
    this.deps.out.publish(deviceStateTopic(deviceId), "", "ha_state");
    this.published.delete(deviceId);
  }

  close(): void {
    this.closed = true;
    this.stopListening();
  }

  private update(deviceId: string, force: boolean): void {
    const d = this.deps.transport.device(deviceId);
    if (d) this.publishDevice(d, force);
  }

  private publishDevice(d: DeviceView, force: boolean): void {
    const before = this.published.get(d.deviceId) ?? new Map<string, string>();
    const now = new Map(discoveryConfigs(d, this.opts).map((c) => [c.topic, JSON.stringify(c.payload)]));
    // configurations first: an entity exists before its first state arrives
    for (const [topic, json] of now) if (force || before.get(topic) !== json) this.deps.out.publish(topic, json, "ha_discovery");
    for (const topic of before.keys()) if (!now.has(topic)) this.deps.out.publish(topic, "", "ha_discovery");
    this.published.set(d.deviceId, now);
    this.deps.out.publish(deviceStateTopic(d.deviceId), JSON.stringify(deviceStatePayload(d, this.deps.alertsFiring(d.deviceId))), "ha_state");
  }

  /** A failure here must not fail the event that caused it (it is stored already): log it. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.deps.log.error({ err }, "home assistant discovery failed");
    }
  }
}
