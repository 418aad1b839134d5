/**
 * Home Assistant MQTT discovery (docs/protocol.md "Home Assistant"): keeps, for every device, its retained
 * discovery configurations (discovery.ts) and its retained state (state.ts) on the broker.
 * - a stored event that changes a device → its state is republished; its configurations only when they
 *   changed (a new reading key, battery, name or location); entities are never removed by a reading
 *   (seen-entities.ts);
 * - every (re)connection of the publisher, and Home Assistant's birth message (`<prefix>/status` = `online`,
 *   sent when Home Assistant starts) → everything is republished (retained, so this is idempotent), in chunks
 *   so a large fleet does not stall the event loop; a request during a republish runs once after it;
 * - DELETE /api/devices/:id (devices/forget-device.ts) → hold(id), then clear(id) awaits the broker's
 *   acknowledgement of every removal (empty retained payloads), then forgotten(id) or, when it failed, release(id).
 *
 * @example
 *   const ha = new HomeAssistant({ out, transport, db, alertsFiring: (id) => alerts.firingCount(id), log }, options);
 *   ha.hold("kitchen-1"); await ha.clear("kitchen-1"); transport.forgetDevice("kitchen-1"); ha.forgotten("kitchen-1");
 *   ha.close();
 */
import type { Logger } from "../ops/log.ts";
import type { RetainedPublisher } from "../outbound/retained-publisher.ts";
import { changesDevice, type DeviceView } from "../protocol/device-state.ts";
import { deviceStateTopic } from "../protocol/topics.ts";
import type { Db } from "../transport/sqlite/db.ts";
import type { Transport } from "../transport/transport.ts";
import { discoveryConfigs, type DiscoveryOptions } from "./discovery.ts";
import { SeenEntities } from "./seen-entities.ts";
import { deviceStatePayload } from "./state.ts";

export interface HomeAssistantDeps {
  out: RetainedPublisher;
  transport: Transport;
  /** Holds the entities each device has had (seen-entities.ts). */
  db: Db;
  /** Alerts firing for a device now (the `problem` entity). */
  alertsFiring: (deviceId: string) => number;
  log: Logger;
}

/** Devices republished per turn of the event loop. */
const REPUBLISH_CHUNK = 200;

export class HomeAssistant {
  private readonly seen: SeenEntities;
  /** Per device, what its configurations were last published from (name, location, entities), to publish only changes. */
  private readonly published = new Map<string, string>();
  /** Devices being deleted: nothing is published for them. */
  private readonly held = new Set<string>();
  private readonly stopListening: () => void;
  private republishing: "no" | "running" | "again" = "no";
  private closed = false;

  constructor(private readonly deps: HomeAssistantDeps, private readonly opts: DiscoveryOptions) {
    this.seen = new SeenEntities(deps.db);
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

  /** Publishes every device's configurations and state again, a chunk per event-loop turn. */
  republishAll(): void {
    if (this.closed) return;
    if (this.republishing !== "no") {
      this.republishing = "again";
      return;
    }
    this.republishing = "running";
    const ids = this.deps.transport.devices().map((d) => d.deviceId);
    const next = (from: number): void => {
      if (this.closed) return;
      // each device is read again: one deleted or changed since the list was taken is published as it is now
      for (const id of ids.slice(from, from + REPUBLISH_CHUNK)) this.guard(() => this.update(id, true));
      if (from + REPUBLISH_CHUNK < ids.length) setImmediate(() => next(from + REPUBLISH_CHUNK));
      else {
        const again = this.republishing === "again";
        this.republishing = "no";
        if (again) this.republishAll();
      }
    };
    next(0);
  }

  /** The device is being deleted: nothing more is published for it until forgotten() or release(). */
  hold(deviceId: string): void {
    this.held.add(deviceId);
  }

  /**
   * Removes the device's entities, then its state, from the broker (and so from Home Assistant); resolves when
   * the broker acknowledged every removal, throws when it did not (the publisher is not connected, a timeout).
   */
  async clear(deviceId: string): Promise<void> {
    const d = this.deps.transport.device(deviceId);
    if (!d) return;
    // every entity it had, and a battery entity in case an earlier run published one
    const entities = this.seen.see(d);
    const topics = discoveryConfigs(d, this.opts, { ...entities, battery: true }).map((c) => c.topic);
    await Promise.all(topics.map((t) => this.deps.out.publishAcked(t, "", "ha_discovery")));
    await this.deps.out.publishAcked(deviceStateTopic(deviceId), "", "ha_state");
  }

  /** The device was deleted: a later event of it starts afresh, as a new device. */
  forgotten(deviceId: string): void {
    this.seen.forget(deviceId);
    this.published.delete(deviceId);
    this.held.delete(deviceId);
  }

  /** The deletion failed: the device keeps its entities (published again now, or on the next connection). */
  release(deviceId: string): void {
    this.held.delete(deviceId);
    this.guard(() => this.update(deviceId, true));
  }

  close(): void {
    this.closed = true;
    this.stopListening();
  }

  private update(deviceId: string, force: boolean): void {
    if (this.held.has(deviceId)) return;
    const d = this.deps.transport.device(deviceId);
    if (d) this.publishDevice(d, force);
  }

  private publishDevice(d: DeviceView, force: boolean): void {
    const entities = this.seen.see(d);
    const key = JSON.stringify([d.name, d.location, entities]);
    // configurations first: an entity exists before its first state arrives
    if (force || this.published.get(d.deviceId) !== key) {
      for (const c of discoveryConfigs(d, this.opts, entities)) this.deps.out.publish(c.topic, JSON.stringify(c.payload), "ha_discovery");
      // while disconnected the publishes were dropped: the next connection publishes them (force)
      if (this.deps.out.connected) this.published.set(d.deviceId, key);
    }
    const state = deviceStatePayload(d, this.deps.alertsFiring(d.deviceId), entities.readingKeys);
    this.deps.out.publish(deviceStateTopic(d.deviceId), JSON.stringify(state), "ha_state");
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
