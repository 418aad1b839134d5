/** GET /events: the SSE stream (docs/protocol.md "GET /events"). */
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import type { AppEnv } from "../http/env.ts";
import { jsonError } from "../http/errors.ts";
import { ErrHubClosed, type Hub } from "../hub/hub.ts";
import { NodeResponseSink, SSE_HEADERS, WebStreamSink } from "../hub/sink.ts";
import { coversFilters } from "../middleware/auth/index.ts";
import { ErrInvalidTopicFilter, validateTopicFilter } from "../topics.ts";

const MAX_FILTERS = 32;

export function eventsRoute(hub: Hub): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", (c) => {
    const principal = c.get("principal");
    const requested = c.req.queries("topic") ?? [];
    if (requested.length > MAX_FILTERS) {
      return jsonError(c, 400, "invalid_topic_filter", `at most ${MAX_FILTERS} topic filters`);
    }
    for (const f of requested) {
      try {
        validateTopicFilter(f);
      } catch (e) {
        if (e instanceof ErrInvalidTopicFilter) return jsonError(c, 400, e.code, e.message);
        throw e;
      }
    }
    // No filter means "everything I may read".
    const filters = requested.length ? requested : (principal.read ?? ["#"]);
    if (!coversFilters(principal, filters)) {
      return jsonError(c, 403, "forbidden", "the token's read filters do not cover the requested topics");
    }

    const rawId = c.req.header("last-event-id") ?? c.req.query("lastEventId"); // the header wins
    let lastEventId: number | undefined;
    if (rawId !== undefined && rawId !== "") {
      if (!/^\d{1,15}$/.test(rawId)) return jsonError(c, 400, "invalid_last_event_id", "Last-Event-ID must be an event id");
      lastEventId = Number(rawId);
    }

    // On Node the stream writes straight to the ServerResponse (less memory per idle stream than a
    // ReadableStream body); under app.request() there is none, and it becomes a Response body.
    const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
    const sink = outgoing ? new NodeResponseSink(outgoing) : new WebStreamSink();
    try {
      hub.subscribe({ filters, allowed: principal.read, lastEventId }, sink);
    } catch (e) {
      if (e instanceof ErrHubClosed) return jsonError(c, 503, e.code, e.message);
      throw e;
    }
    return sink instanceof WebStreamSink ? new Response(sink.body, { headers: SSE_HEADERS }) : RESPONSE_ALREADY_SENT;
  });
  return app;
}
