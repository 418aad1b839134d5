/** GET /events: the SSE stream (docs/protocol.md "GET /events"). */
import type { HttpBindings } from "@hono/node-server";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import { ErrInvalidTopicFilter, validateTopicFilter } from "../../protocol/topic-filter.ts";
import { NodeResponseSink, SSE_HEADERS, WebStreamSink } from "../../transport/hub/sink.ts";
import { ErrTransportClosed, type Transport } from "../../transport/transport.ts";
import { coversFilters } from "../auth.ts";
import type { AppEnv } from "../env.ts";
import { ApiError } from "../errors.ts";

const MAX_FILTERS = 32;

export function eventsRoute(transport: Transport): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", (c) => {
    const principal = c.get("principal");
    const requested = c.req.queries("topic") ?? [];
    if (requested.length > MAX_FILTERS) {
      throw new ApiError(400, "invalid_topic_filter", `at most ${MAX_FILTERS} topic filters`);
    }
    for (const f of requested) {
      try {
        validateTopicFilter(f);
      } catch (e) {
        if (e instanceof ErrInvalidTopicFilter) throw new ApiError(400, e.code, e.message);
        throw e;
      }
    }
    // No filter means "everything I may read".
    const filters = requested.length ? requested : (principal.read ?? ["#"]);
    if (!coversFilters(principal, filters)) {
      throw new ApiError(403, "forbidden", "the token's read filters do not cover the requested topics");
    }

    const rawId = c.req.header("last-event-id") ?? c.req.query("lastEventId"); // the header wins
    let lastEventId: number | undefined;
    if (rawId !== undefined && rawId !== "") {
      if (!/^\d{1,15}$/.test(rawId)) throw new ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event id");
      lastEventId = Number(rawId);
    }

    // On Node the stream writes straight to the ServerResponse (less memory per idle stream than a
    // ReadableStream body); under app.request() there is none, and it becomes a Response body.
    const outgoing = (c.env as Partial<HttpBindings> | undefined)?.outgoing;
    const sink = outgoing ? new NodeResponseSink(outgoing) : new WebStreamSink();
    try {
      transport.subscribe({ filters, allowed: principal.read, lastEventId }, sink);
    } catch (e) {
      if (e instanceof ErrTransportClosed) throw new ApiError(503, e.code, e.message);
      throw e;
    }
    return sink instanceof WebStreamSink ? new Response(sink.body, { headers: SSE_HEADERS }) : RESPONSE_ALREADY_SENT;
  });
  return app;
}
