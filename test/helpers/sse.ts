/**
 * An SSE client for tests: fetch + eventsource-parser (the maintained parser package), no
 * automatic reconnect, so tests see exactly what the gateway sends.
 *
 * @example
 * const sse = await connectSse(gw.url, { topics: ["sensors/+/telemetry"] });
 * const [first] = await sse.waitForEvents(1, (e) => e.event === "telemetry");
 * sse.close();
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
  /** `data` parsed as JSON (undefined when it is not JSON). */
  json: any;
  /** Date.now() when the event was parsed. */
  receivedAt: number;
}

export interface SseOptions {
  /** Repeatable `topic` query parameters. */
  topics?: string[];
  /** Sent as the Last-Event-ID header. */
  lastEventId?: string | number;
  /** Sent as the `lastEventId` query parameter. */
  lastEventIdQuery?: string | number;
  token?: string;
  /** How the token travels; default "header" (Authorization: Bearer). */
  tokenVia?: "header" | "query" | "cookie";
  headers?: Record<string, string>;
  /** Path of the stream; default "/events". */
  path?: string;
}

/** The stream answered with a non-200 status (e.g. 400 bad filter, 401, 403). */
export class ErrSseHttp extends Error {
  constructor(readonly status: number, readonly body: string) {
    super(`SSE request failed: HTTP ${status} ${body}`);
    this.name = "ErrSseHttp";
  }
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  /** Resolves when the server ends the stream or the connection breaks (never rejects). */
  readonly ended: Promise<void>;
  private endedFlag = false;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly response: Response,
    private readonly abort: AbortController,
  ) {
    const parser = createParser({
      onEvent: (m: EventSourceMessage) => {
        let json: unknown;
        try {
          json = JSON.parse(m.data);
        } catch {
          json = undefined;
        }
        this.events.push({ id: m.id, event: m.event ?? "message", data: m.data, json, receivedAt: Date.now() });
        this.notify();
      },
      onComment: (c) => {
        this.comments.push(c);
        this.notify();
      },
      onRetry: (r) => {
        this.retry = r;
      },
    });
    this.ended = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
        }
      } catch {
        // aborted or the connection was cut: both simply end the stream for the test
      } finally {
        this.endedFlag = true;
        this.notify();
      }
    })();
  }

  get status(): number {
    return this.response.status;
  }

  get isEnded(): boolean {
    return this.endedFlag;
  }

  /** Id of the last event that carried one (what a browser would resume from). */
  get lastEventId(): string | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i].id !== undefined) return this.events[i].id;
    return undefined;
  }

  /** Events of one kind (telemetry, status, command-ack, command, reset). */
  ofKind(kind: string): SseEvent[] {
    return this.events.filter((e) => e.event === kind);
  }

  /** Waits until `predicate(events)` holds; throws after the deadline with `message`. */
  async waitFor(predicate: (events: SseEvent[]) => boolean, opts: { timeoutMs?: number; message?: string } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    if (predicate(this.events)) return;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (predicate(this.events)) return done(resolve);
        if (this.endedFlag) return done(() => reject(new Error(`stream ended while waiting for ${opts.message ?? "events"} (${this.events.length} events)`)));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${opts.message ?? "events"} (${this.events.length} events)`))),
        timeoutMs,
      );
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        fn();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits for at least `n` events matching `filter` and returns them. */
  async waitForEvents(n: number, filter: (e: SseEvent) => boolean = () => true, timeoutMs = 10_000): Promise<SseEvent[]> {
    await this.waitFor((events) => events.filter(filter).length >= n, { timeoutMs, message: `${n} matching events` });
    return this.events.filter(filter);
  }

  /** Waits until the server closes the stream. */
  async waitForEnd(timeoutMs = 10_000): Promise<void> {
    await this.waitFor(() => this.endedFlag, { timeoutMs, message: "the stream to end" }).catch((e: Error) => {
      if (!this.endedFlag) throw e;
    });
  }

  /** Closes the connection (like closing a browser tab); safe to call twice. */
  close(): void {
    this.abort.abort();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

/** Opens a stream; resolves once the response headers arrived (throws ErrSseHttp unless 200). */
export async function connectSse(baseUrl: string, opts: SseOptions = {}): Promise<SseClient> {
  const url = new URL(opts.path ?? "/events", baseUrl);
  for (const t of opts.topics ?? []) url.searchParams.append("topic", t);
  if (opts.lastEventIdQuery !== undefined) url.searchParams.set("lastEventId", String(opts.lastEventIdQuery));
  const headers: Record<string, string> = { Accept: "text/event-stream", ...opts.headers };
  if (opts.lastEventId !== undefined) headers["Last-Event-ID"] = String(opts.lastEventId);
  if (opts.token !== undefined) {
    const via = opts.tokenVia ?? "header";
    if (via === "header") headers.Authorization = `Bearer ${opts.token}`;
    else if (via === "query") url.searchParams.set("access_token", opts.token);
    else headers.Cookie = `sensors_token=${encodeURIComponent(opts.token)}`;
  }
  const abort = new AbortController();
  const response = await fetch(url, { headers, signal: abort.signal });
  if (response.status !== 200) {
    const body = await response.text().catch(() => "");
    throw new ErrSseHttp(response.status, body);
  }
  return new SseClient(response, abort);
}
