/**
 * Alert webhooks (docs/protocol.md "Alerts", the "Webhooks" bullet): each alert change is POSTed, signed, to
 * every configured target, retried with exponential backoff, and counted as a dead letter when given up.
 *
 * @example
 *   const hooks = new Webhooks(config.alerts.webhooks, {
 *     delivered: metrics.webhookDeliveries, retried: metrics.webhookRetries, deadLetters: metrics.webhookDeadLetters,
 *   }, log.child({ module: "webhooks" }));
 *   hooks.send(alert); // after each change; returns at once
 *   await hooks.close(); // at shutdown
 */
import { createHmac, randomUUID } from "node:crypto";
import { z } from "zod";
import type { Logger } from "../ops/log.ts";
import type { AlertData, AlertKind } from "../protocol/events.ts";

export interface WebhookTarget {
  url: string;
  secret: string;
  /** Only alerts of these rule kinds (default all). */
  kinds?: AlertKind[];
}

const KINDS = ["threshold", "battery", "overdue", "offline"] as const satisfies readonly AlertKind[];

export const webhookTargetSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: "webhook urls are http or https" }),
  secret: z.string().min(16, "webhook secrets must be at least 16 characters"),
  kinds: z.array(z.enum(KINDS)).optional(),
}) satisfies z.ZodType<WebhookTarget>;

export interface WebhookOptions {
  /** Per POST, answer included (default 5000: the protocol's "no answer in 5 s"). */
  timeoutMs?: number;
  /** Tries in all, the first included (default 6). */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Deliveries waiting per target, the one in flight not included (default 1000). */
  maxQueued?: number;
}

export interface WebhookCounters {
  delivered: { inc(): void };
  retried: { inc(): void };
  deadLetters: { inc(): void };
}

interface Delivery { id: string; body: string; alertId: number }

/** One target: a FIFO with one delivery in flight, so a `resolved` never overtakes its `firing`. */
interface Lane {
  target: WebhookTarget;
  /** The URL without userinfo: fetch refuses credentials in a URL, they go in an Authorization header. */
  url: string;
  auth: string | undefined;
  /** origin + pathname: the query or userinfo may carry a token, so logs get only this. */
  where: string;
  queue: Delivery[];
  running: Promise<void> | undefined;
  /** Ends the backoff wait early (close). */
  wake: (() => void) | undefined;
}

type Outcome = { ok: true } | { ok: false; permanent: boolean; reason: string };

export class Webhooks {
  private readonly lanes: Lane[];
  private readonly opts: Required<WebhookOptions>;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(targets: WebhookTarget[], private readonly counters: WebhookCounters, private readonly log: Logger, opts: WebhookOptions = {}) {
    this.opts = { timeoutMs: 5000, attempts: 6, baseDelayMs: 1000, maxDelayMs: 300_000, maxQueued: 1000, ...opts };
    this.lanes = targets.map((target) => {
      const u = new URL(target.url);
      const auth = u.username || u.password
        ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}`
        : undefined;
      u.username = u.password = "";
      return { target, url: u.href, auth, where: u.origin + u.pathname, queue: [], running: undefined, wake: undefined };
    });
  }

  /** Queues the alert for every target whose kinds match; never throws, never blocks the caller. */
  send(alert: AlertData): void {
    try {
      const body = JSON.stringify({ type: "alert", alert });
      for (const lane of this.lanes) {
        if (lane.target.kinds && !lane.target.kinds.includes(alert.kind)) continue;
        if (this.closed) {
          this.counters.deadLetters.inc();
          continue;
        }
        if (lane.queue.length >= this.opts.maxQueued) {
          const dropped = lane.queue.shift()!;
          this.counters.deadLetters.inc();
          this.log.warn({ url: lane.where, deliveryId: dropped.id, alertId: dropped.alertId }, "webhook queue full: dropped the oldest delivery");
        }
        lane.queue.push({ id: randomUUID(), body, alertId: alert.alertId });
        lane.running ??= this.run(lane);
      }
    } catch (e) {
      this.log.error({ err: e }, "webhook send failed");
    }
  }

  /**
   * Stops retrying (a backoff wait ends at once) and waits for the POSTs in flight, each bounded by timeoutMs;
   * one that succeeds counts as delivered. Everything not delivered then (still queued, or failed and not to be
   * retried) is counted as a dead letter, in one log line: given up is given up, whatever the reason.
   * Idempotent: later calls return the same promise; send() after close counts a dead letter per target.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    for (const lane of this.lanes) lane.wake?.();
    await Promise.all(this.lanes.map((lane) => lane.running));
    let undelivered = 0;
    for (const lane of this.lanes) {
      undelivered += lane.queue.length;
      lane.queue.length = 0;
    }
    for (let i = 0; i < undelivered; i++) this.counters.deadLetters.inc();
    if (undelivered > 0) this.log.warn({ undelivered }, "webhook deliveries not delivered because the gateway stopped");
  }

  private async run(lane: Lane): Promise<void> {
    while (!this.closed && lane.queue.length > 0) {
      const delivery = lane.queue.shift()!; // out of the queue while tried: overflow drops the oldest *waiting* one
      if (!(await this.deliver(lane, delivery))) lane.queue.unshift(delivery); // abandoned: close() counts it
    }
    lane.running = undefined;
  }

  /** @returns false when close() stopped it before it was delivered or given up. */
  private async deliver(lane: Lane, delivery: Delivery): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.post(lane, delivery);
      if (outcome.ok) {
        this.counters.delivered.inc();
        return true;
      }
      if (outcome.permanent || attempt >= this.opts.attempts) {
        this.counters.deadLetters.inc();
        this.log.warn({ url: lane.where, deliveryId: delivery.id, alertId: delivery.alertId, attempt, reason: outcome.reason }, "webhook delivery given up");
        return true;
      }
      if (this.closed) return false;
      this.counters.retried.inc();
      this.log.debug({ url: lane.where, deliveryId: delivery.id, attempt, reason: outcome.reason }, "webhook delivery failed, will retry");
      // Exponential, capped; up to 10% jitter on top so targets that failed together do not retry in lockstep.
      const backoff = this.opts.baseDelayMs * 2 ** (attempt - 1) * (1 + Math.random() * 0.1);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(backoff, this.opts.maxDelayMs));
        timer.unref();
        lane.wake = () => { clearTimeout(timer); resolve(); };
      });
      lane.wake = undefined;
      if (this.closed) return false;
    }
  }

  private async post(lane: Lane, delivery: Delivery): Promise<Outcome> {
    // Signed: "<timestamp>.<body>", so a receiver that checks the timestamp's age also refuses a replayed
    // delivery; the body is serialized once, the signature is over exactly the bytes sent.
    const timestamp = String(Date.now());
    const signature = createHmac("sha256", lane.target.secret).update(`${timestamp}.`).update(delivery.body).digest("hex");
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      "X-Sensors-Signature": `sha256=${signature}`,
      "X-Sensors-Timestamp": timestamp,
      "X-Sensors-Delivery": delivery.id, // the same on retries: receivers de-duplicate by it
      "User-Agent": "sensors-gateway",
    };
    if (lane.auth) headers.Authorization = lane.auth;
    try {
      // redirect "manual": a 3xx is a failure to retry, not a silent POST-turned-GET to somewhere else.
      const res = await fetch(lane.url, { method: "POST", headers, body: delivery.body, redirect: "manual", signal: AbortSignal.timeout(this.opts.timeoutMs) });
      await res.body?.cancel().catch(() => {}); // the answer is not read: free the connection
      if (res.status >= 200 && res.status < 300) return { ok: true };
      // A 4xx says this request will never be accepted (bad URL, auth, shape): retrying only delays the dead
      // letter. 408 (timeout) and 429 (rate limit) are the receiver asking us to try again later.
      const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      return { ok: false, permanent, reason: `HTTP ${res.status}` };
    } catch (e) {
      // fetch's own message is "fetch failed"; the cause says why (a code, or e.g. "bad port"), never the query.
      const err = e as Error & { cause?: { code?: string; message?: string } };
      return { ok: false, permanent: false, reason: err.cause?.code ?? err.cause?.message ?? err.name };
    }
  }
}
