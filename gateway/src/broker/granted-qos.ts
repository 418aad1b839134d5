/**
 * Delivers at most the QoS a subscriber was granted (MQTT 3.1.1 §3.8.4: "the QoS of the message is the minimum
 * of the published QoS and the granted QoS"). aedes 1.2 downgrades only when the subscription filter equals the
 * topic (lib/client.js looks up `subscriptions[packet.topic]`), so a QoS 1 wildcard subscriber such as the
 * gateway's `sensors/+/telemetry` received QoS 2 flows. Its mqtt.js keeps an inbound QoS 2 PUBLISH in memory
 * until PUBREL: a kill -9 in between lost the reading (found by the soak in test/soak).
 */
import type { AedesPublishPacket, Client } from "aedes";
import { topicMatches } from "../protocol/topic-filter.ts";

/** The highest QoS granted to `client` by a subscription matching `topic`, or undefined when none is known. */
export function grantedQos(client: Client, topic: string): number | undefined {
  const subscriptions = (client as unknown as { subscriptions?: Record<string, { qos?: number }> }).subscriptions;
  if (subscriptions === undefined) return undefined;
  let best: number | undefined;
  for (const filter of Object.keys(subscriptions)) {
    if (!topicMatches(filter, topic)) continue;
    const qos = subscriptions[filter]?.qos ?? 0;
    if (best === undefined || qos > best) best = qos;
  }
  return best;
}

/** aedes' authorizeForward hook: the packet, downgraded to the granted QoS where needed. */
export function forwardAtGrantedQos(client: Client, packet: AedesPublishPacket): AedesPublishPacket {
  const granted = grantedQos(client, packet.topic);
  if (granted === undefined || granted >= packet.qos) return packet;
  return { ...packet, qos: granted as AedesPublishPacket["qos"] };
}
