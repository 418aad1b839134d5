import { apiUrl } from "./api.ts";
import { tokenForQuery } from "./auth.ts";
import { eventTime, parseEvent } from "./parse.ts";
import { EVENT_KINDS, type ConnState, type StreamEvent } from "./types.ts";

export interface StreamOptions {
  /** MQTT filters sent as repeated `topic` parameters; empty means the gateway default (`#`). */
  topics: string[];
  /** Resume point for a fresh EventSource (a new leader tab, or after the browser gave up retrying). */
  lastEventId: number | null;
  onEvent(ev: StreamEvent): void;
  onState(state: ConnState): void;
  /** An event without the fields the page needs: counted by the caller, never shown. */
  onMalformed(): void;
}

export interface Stream {
  close(): void;
}

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 15_000;

/**
 * The one EventSource of this browser (only the leader tab calls this). It resumes from the last event id:
 * the browser sends `Last-Event-ID` itself on its automatic retries; when it gives up (an HTTP error such
 * as a proxy's 502), a fresh EventSource carries the id as `lastEventId` in the query.
 *
 * @example const s = openStream({ topics: [], lastEventId: null, onEvent, onState, onMalformed }); s.close();
 */
export function openStream(opts: StreamOptions): Stream {
  let lastId = opts.lastEventId;
  let source: EventSource | null = null;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let retryMs = RETRY_MIN_MS;
  let closed = false;
  // Set when a connection opens with a resume id: events the gateway stamped before that moment were
  // replayed from history, i.e. missed while we were away.
  let resumedAt: number | null = null;
  const state: ConnState = { state: "connecting", missed: 0, reset: null, lastEventId: lastId };
  const emit = (patch: Partial<ConnState>) => {
    Object.assign(state, patch, { lastEventId: lastId });
    opts.onState({ ...state });
  };

  const streamUrl = () => {
    const url = apiUrl("events");
    for (const t of opts.topics) url.searchParams.append("topic", t);
    if (lastId !== null) url.searchParams.set("lastEventId", String(lastId));
    const token = tokenForQuery();
    if (token !== null) url.searchParams.set("access_token", token);
    return url;
  };

  const onMessage = (kind: StreamEvent["kind"]) => (msg: MessageEvent<string>) => {
    const ev = parseEvent(kind, msg.lastEventId, msg.data);
    if (ev === null) return opts.onMalformed();
    // The gateway promises no duplicates; this guard keeps that true for the page whatever happens.
    // A reset may move the cursor back (a wiped gateway database restarts ids), so it always passes.
    if (ev.kind !== "reset" && lastId !== null && ev.id <= lastId) return;
    lastId = ev.id;
    opts.onEvent(ev);
    if (ev.kind === "reset") return emit({ reset: ev.data });
    const at = eventTime(ev);
    if (resumedAt !== null && at !== null && at < resumedAt) emit({ missed: state.missed + 1 });
  };

  const connect = () => {
    const es = new EventSource(streamUrl());
    source = es;
    for (const kind of EVENT_KINDS) es.addEventListener(kind, onMessage(kind) as EventListener);
    es.onopen = () => {
      retryMs = RETRY_MIN_MS;
      resumedAt = lastId === null ? null : Date.now();
      emit({ state: "live", missed: 0, reset: null });
    };
    es.onerror = () => {
      if (closed) return;
      if (es.readyState === EventSource.CONNECTING) return emit({ state: "reconnecting" });
      // CLOSED: the browser will not retry (non-200 answer). Find out whether we lost the right to read.
      es.close();
      void fetch(apiUrl("api/devices"), { credentials: "same-origin" })
        .then((res) => res.status === 401 || res.status === 403)
        .catch(() => false)
        .then((denied) => {
          if (closed) return;
          if (denied) return emit({ state: "unauthorized" });
          emit({ state: "reconnecting" });
          retryTimer = setTimeout(connect, retryMs);
          retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
        });
    };
  };

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(retryTimer);
      source?.close();
    },
  };
}
