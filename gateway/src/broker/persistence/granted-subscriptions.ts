import { StoreDecorator, type BrokerStore, type ClientRef, type StoredSubscription } from "./store.ts";

/** Whether the ACL grants `client` the subscription `topic` (the aedes Client object is what aedes passes). */
export type SubscriptionGranted = (client: ClientRef, topic: string) => boolean;

/**
 * Stores only the subscriptions the ACL grants. aedes 1.2 stores the whole SUBSCRIBE as soon as one of its filters
 * is granted (lib/handlers/subscribe.js storeSubscriptions passes packet.subscriptions): a refused filter next to
 * an allowed one became part of the session, messages were queued for it, and sent on the next connect.
 */
export class GrantedSubscriptionsOnly extends StoreDecorator {
  constructor(
    inner: BrokerStore,
    private readonly granted: SubscriptionGranted,
  ) {
    super(inner);
  }

  override async addSubscriptions(client: ClientRef, subs: StoredSubscription[]): Promise<void> {
    const granted = subs.filter((sub) => this.granted(client, sub.topic));
    if (granted.length > 0) await this.inner.addSubscriptions(client, granted);
  }
}
