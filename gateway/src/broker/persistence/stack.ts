import { GrantedSubscriptionsOnly, type SubscriptionGranted } from "./granted-subscriptions.ts";
import { Qos2Tracker } from "./qos2-tracker.ts";
import { QueueBeforeAck } from "./queue-before-ack.ts";
import type { BrokerStore } from "./store.ts";
import { UniquePacketIds } from "./unique-packet-ids.ts";

export interface DecoratedStore {
  /** What aedes gets as its persistence. */
  store: BrokerStore;
  /** The early-queue step, for authorizePublish. */
  early: QueueBeforeAck;
  /** Which message a QoS 2 ack completed, for the `delivered` event. */
  qos2: Qos2Tracker;
}

/**
 * The embedded broker's rules around its store, outermost first (a call from aedes passes down in this order):
 *
 *   GrantedSubscriptionsOnly → Qos2Tracker → UniquePacketIds → QueueBeforeAck → inner
 *
 * - QueueBeforeAck sits on the store: its early rows are written exactly as given, and it is the only layer
 *   that changes outgoingEnqueueCombi.
 * - UniquePacketIds moves a PUBLISH to a free packet id before the store records the id (outgoingUpdate).
 *   Early rows have no id yet, so they never count as taken.
 * - Qos2Tracker is above it: it remembers a QoS 2 flow under the id aedes will send, after the layers below had
 *   their say (UniquePacketIds may have moved it) and only once the store accepted the update.
 * - GrantedSubscriptionsOnly only filters addSubscriptions, which no other layer touches; outermost, so nothing
 *   below ever sees a refused subscription.
 *
 * @example
 * const { store, early, qos2 } = decoratedPersistence(new SqlitePersistence({ dataDir }), hooks.subscriptionGranted);
 * const aedes = await Aedes.createBroker({ persistence: store });
 */
export function decoratedPersistence(inner: BrokerStore, subscriptionGranted: SubscriptionGranted): DecoratedStore {
  const early = new QueueBeforeAck(inner);
  const qos2 = new Qos2Tracker(new UniquePacketIds(early));
  return { store: new GrantedSubscriptionsOnly(qos2, subscriptionGranted), early, qos2 };
}
