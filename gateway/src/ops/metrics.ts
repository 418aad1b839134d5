/**
 * Prometheus metrics. Each gateway owns its own Registry (not prom-client's global one) so several
 * gateways can run in one test process without "metric already registered" errors.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { BrokerCounters } from "../broker/index.ts";

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics(opts: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    messagesIn: new Counter({
      name: "gateway_mqtt_messages_in_total",
      help: "MQTT messages received, by kind (telemetry, status, ack, other)",
      labelNames: ["kind"] as const,
      registers,
    }),
    rejected: new Counter({
      name: "gateway_mqtt_messages_rejected_total",
      help: "Bad MQTT messages, acknowledged but not stored, by reason (too_large, not_json, bad_shape, bad_topic)",
      labelNames: ["reason"] as const,
      registers,
    }),
    notAcked: new Counter({
      name: "gateway_mqtt_messages_not_acked_total",
      help: "MQTT messages left unacknowledged because they could not be stored (the broker redelivers them), by reason (store_failed, shutting_down)",
      labelNames: ["reason"] as const,
      registers,
    }),
    duplicates: new Counter({
      name: "gateway_duplicate_readings_total",
      help: "Telemetry dropped because (deviceId, seq) was already stored (MQTT-level redelivery)",
      registers,
    }),
    retainedCleared: new Counter({
      name: "gateway_mqtt_retained_cleared_total",
      help: "Empty status payloads (a retained status deleted, e.g. by DELETE /api/devices/:id): no report, not stored",
      registers,
    }),
    retainedReplays: new Counter({
      name: "gateway_mqtt_retained_replays_total",
      help: "Retained status messages the broker replayed on (re)subscription that repeat the status the gateway has (not stored)",
      registers,
    }),
    mqttDupFlag: new Counter({
      name: "gateway_mqtt_dup_flag_total",
      help: "MQTT PUBLISH packets received with the DUP flag set",
      registers,
    }),
    eventsStored: new Counter({
      name: "gateway_events_stored_total",
      help: "Events given an id and stored in history, by kind",
      labelNames: ["kind"] as const,
      registers,
    }),
    eventsOut: new Counter({
      name: "gateway_sse_events_out_total",
      help: "Events handed to SSE streams (live and replayed)",
      registers,
    }),
    clients: new Gauge({ name: "gateway_sse_clients", help: "Open SSE streams", registers }),
    // scaled-out mode only (transport/redis): 0 whenever MQTT messages are not acknowledged because of Redis
    redisUp: new Gauge({
      name: "gateway_redis_up",
      help: "1 while this gateway stores events through the shared Redis log: reachable, taking appends, applied locally (Redis mode)",
      registers,
    }),
    redisAppendFailures: new Counter({
      name: "gateway_redis_append_failures_total",
      help: "Appends to the shared Redis log that failed (e.g. OOM, timeout); the MQTT message stays unacknowledged",
      registers,
    }),
    redeliveryReconnects: new Counter({
      name: "gateway_mqtt_redelivery_reconnects_total",
      help: "MQTT reconnects made so that the broker redelivers messages that could not be stored (exponential backoff)",
      registers,
    }),
    drops: new Counter({
      name: "gateway_sse_dropped_clients_total",
      help: "SSE streams closed by the gateway, by reason (queue_events, queue_bytes, stalled)",
      labelNames: ["reason"] as const,
      registers,
    }),
    resets: new Counter({
      name: "gateway_sse_resets_total",
      help: "Resumes that asked for events no longer in history",
      registers,
    }),
    relayLatency: new Histogram({
      name: "gateway_relay_latency_seconds",
      help: "Time from MQTT receipt of a live event to the end of the batch of SSE writes that sent it to the streams ready for it (once per event)",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    httpRejected: new Counter({
      name: "gateway_http_errors_total",
      help: "HTTP requests answered with an error, by error code (docs/protocol.md \"Errors\": unauthorized, forbidden, invalid_query, body_too_large, not_found, internal, ...)",
      labelNames: ["code"] as const,
      registers,
    }),
    commands: new Counter({
      name: "gateway_command_transitions_total",
      help: "Command state changes, by state",
      labelNames: ["state"] as const,
      registers,
    }),
    summaryValuesSkipped: new Counter({
      name: "gateway_summary_values_skipped_total",
      help: "Reading values left out of the summaries because they are not finite numbers",
      registers,
    }),
    alertTransitions: new Counter({
      name: "gateway_alert_transitions_total",
      help: "Alert changes, by rule kind and change (firing, resolved, acked)",
      labelNames: ["kind", "change"] as const,
      registers,
    }),
    alertsFiring: new Gauge({ name: "gateway_alerts_firing", help: "Alerts firing now", registers }),
    webhookDeliveries: new Counter({
      name: "gateway_webhook_deliveries_total",
      help: "Webhook POSTs answered with 2xx",
      registers,
    }),
    webhookRetries: new Counter({
      name: "gateway_webhook_retries_total",
      help: "Webhook POSTs that failed (non-2xx, timeout, refused) and will be tried again",
      registers,
    }),
    publishFailed: new Counter({
      name: "gateway_mqtt_publish_failed_total",
      help: "Retained messages the gateway's publisher could not publish (not connected, no PUBACK in time, a client error), by what (ha_discovery, ha_state, alert, gateway_status); each (re)connection republishes them. An ACL denial is not seen: MQTT 3.1.1 brokers acknowledge a denied PUBLISH",
      labelNames: ["what"] as const,
      registers,
    }),
    tlsCertificateExpiry: new Gauge({
      name: "gateway_tls_certificate_expiry_timestamp_seconds",
      help: "When the certificate in service expires (Unix time): alert on it to renew in time",
      registers,
    }),
    tlsHandshakeErrors: new Counter({
      name: "gateway_tls_handshake_errors_total",
      help: "TLS handshakes that failed on the gateway's HTTPS port, by listener (https): a client that does not trust the certificate, a scanner, plain HTTP",
      labelNames: ["listener"] as const,
      registers,
    }),
    tlsReloads: new Counter({
      name: "gateway_tls_reloads_total",
      help: "Certificate reloads after the files changed, by result (failed: unusable, expired or not yet valid, the previous certificate stays in service; watch_failed: the directory cannot be watched, changes are found by a check every minute)",
      labelNames: ["result"] as const,
      registers,
    }),
    webhookDeadLetters: new Counter({
      name: "gateway_webhook_dead_letters_total",
      help: "Webhook deliveries given up after the last attempt (or dropped because the queue was full)",
      registers,
    }),
  };
}

/** Exports the embedded broker's own counters (broker.counters), read at each scrape. */
export function exportBrokerCounters(metrics: Metrics, counters: Readonly<BrokerCounters>): void {
  const registers = [metrics.registry];
  new Counter({
    name: "gateway_broker_refusals_total",
    help: "Embedded MQTT broker refusals, by kind (connect: CONNACK refused; publish, subscribe: denied by the ACL; forward: a stored subscription the ACL no longer grants)",
    labelNames: ["kind"] as const,
    registers,
    collect() {
      this.reset();
      this.inc({ kind: "connect" }, counters.connectRefused);
      this.inc({ kind: "publish" }, counters.publishDenied);
      this.inc({ kind: "subscribe" }, counters.subscribeDenied);
      this.inc({ kind: "forward" }, counters.forwardDenied);
    },
  });
  new Counter({
    name: "gateway_broker_client_errors_total",
    help: "Embedded MQTT broker connections closed on a protocol or socket error",
    registers,
    collect() {
      this.reset();
      this.inc(counters.clientErrors);
    },
  });
  new Counter({
    name: "gateway_broker_tls_handshake_errors_total",
    help: "Embedded MQTT broker TLS handshakes that failed (mqtts, wss): a client that does not trust the certificate, a scanner",
    registers,
    collect() {
      this.reset();
      this.inc(counters.tlsHandshakeErrors);
    },
  });
}
