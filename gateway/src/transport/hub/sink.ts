/**
 * Where an SSE stream's bytes go. On Node it is the ServerResponse itself: no WHATWG stream, reader and
 * promise chain per connection, which halved the memory of an idle stream (gateway/bench). Under
 * `app.request()` (no Node response) it is a ReadableStream for the Response body.
 */
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";

/** What a sink reports back to its stream. */
export interface SinkEvents {
  /** The receiver took what was written; write again. */
  writable(): void;
  /** The client went away (connection closed, body cancelled). */
  gone(): void;
}

export interface SseSink {
  /** Starts the response; returns whether it can be written to right away. */
  open(events: SinkEvents): boolean;
  /** Writes one chunk; false = the receiver is full until the sink calls `writable()`. */
  write(chunk: Uint8Array): boolean;
  /** Ends the response after what was written (graceful shutdown). */
  end(): void;
  /** Cuts the connection: a dropped stream would never finish a graceful end on a stalled socket. */
  abort(): void;
}

export const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache",
  // nginx and similar proxies buffer responses unless told not to; SSE must flow per event.
  "X-Accel-Buffering": "no",
} as const satisfies OutgoingHttpHeaders;

/** Writes straight to Node's response; `write()` is false while the socket's buffer is over its mark. */
export class NodeResponseSink implements SseSink {
  private events: SinkEvents | undefined;

  constructor(private readonly res: ServerResponse) {}

  open(events: SinkEvents): boolean {
    this.events = events;
    // HTTP/1.1 without chunked framing (as nchan does): the body ends with the connection, which an endless
    // SSE response is the last use of anyway. Each write then goes to the socket as it is, one buffer, instead
    // of a size line + data + CRLF through a cork and a nextTick: less CPU per delivered event (docs/benchmarks.md).
    this.res.useChunkedEncodingByDefault = false;
    this.res.writeHead(200, SSE_HEADERS);
    // Headers out now (the client's EventSource opens at once); writing them also flattens the header
    // string Node keeps for the whole response, ~300 bytes less per idle stream.
    this.res.flushHeaders();
    this.res.on("close", () => events.gone()); // gone() is idempotent; once() would cost a wrapper per stream
    return true;
  }

  write(chunk: Uint8Array): boolean {
    if (this.res.write(chunk)) return true;
    // A 'drain' listener only while one is awaited: most streams never fill their socket.
    this.res.once("drain", () => this.events?.writable());
    return false;
  }

  end(): void {
    this.res.end();
  }

  abort(): void {
    this.res.destroy();
  }
}

/** A Response body for runtimes without a Node response (app.request() in tests). */
export class WebStreamSink implements SseSink {
  readonly body: ReadableStream<Uint8Array>;
  private pulledBeforeOpen = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private events: SinkEvents | undefined;

  constructor() {
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        // a read before open() (a stream that waits before it starts, transport/redis) is remembered for open()
        pull: () => {
          if (this.events) this.events.writable();
          else this.pulledBeforeOpen = true;
        },
        cancel: () => this.events?.gone(),
      },
      // No buffering inside the web stream: the stream's own queue is the only one, so its limits are real.
      { highWaterMark: 0 },
    );
  }

  open(events: SinkEvents): boolean {
    this.events = events;
    return this.pulledBeforeOpen; // else the first read pulls
  }

  write(chunk: Uint8Array): boolean {
    this.controller.enqueue(chunk);
    return false;
  }

  end(): void {
    try {
      this.controller.close();
    } catch {
      // already closed or cancelled by the reader
    }
  }

  abort(): void {
    try {
      this.controller.error(new Error("SSE stream dropped by the gateway"));
    } catch {
      // already closed or cancelled by the reader
    }
  }
}
