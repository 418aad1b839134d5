/**
 * Hostile HTTP/1.1 requests for the gateway's server, on raw sockets (fetch would normalise paths,
 * headers and bodies). Each case sends bytes built here and reads the responses with a small parser.
 *
 * Per response: the status (counted by class), and three checks:
 *  - no 5xx, ever;
 *  - no body that carries a file from outside gateway/web/dist (marker strings), and every 200/206
 *    from the static server is (a range of) a file in dist;
 *  - `expect`: the status docs/protocol.md (or the route's stated rule) gives for this request, when
 *    exactly one thing is wrong with it (contract check).
 * A complete request that gets no response within the answer timeout "hangs" (a failure); an incomplete
 * one (a chunked body that never ends) is expected to get none, or a 413.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import { join } from "node:path";
import type { Rng } from "./prng.ts";

/** Tokens of the gateway under attack (tokens mode): one that may do everything, one read-limited. */
export const HOSTILE_TOKENS = {
  full: { name: "hostile-full", token: "hostile-full-token-0123456789", read: ["#"], write: true },
  limited: { name: "hostile-limited", token: "hostile-limited-token-0123456789", read: ["sensors/hx-1/#"], write: false },
} as const;

type Principal = (typeof HOSTILE_TOKENS)[keyof typeof HOSTILE_TOKENS];

export interface HttpTarget {
  host: string;
  port: number;
}

export interface HttpContext {
  target: HttpTarget;
  dist: DistIndex;
  /** Answer timeout for a complete request. */
  answerMs: number;
  /** How long an incomplete request is held open before giving up. */
  holdMs: number;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  sse: boolean;
}

export interface Expectation {
  rule: string;
  ok: (status: number) => boolean;
}

export interface Req {
  method: string;
  target: string;
  headers: Array<[string, string | Buffer]>;
  body?: Buffer;
  /** The whole request as raw bytes (malformed ones); method/target are then only labels. */
  raw?: Buffer;
  expect?: Expectation;
  /** A path the static file server may answer. */
  static?: boolean;
}

export interface HttpCaseResult {
  /** One status per response (0 = the server closed without one). */
  statuses: number[];
  outcome: string;
  requests: number;
  hang?: string;
  /** Failures other than a hang: 5xx, a leaked file, a contract mismatch (each a line). */
  violations: string[];
  contract: string[];
  release?: () => void;
}

export interface HttpCase {
  index: number;
  seed: number;
  category: string;
  label: string;
  wire: Buffer;
  run(ctx: HttpContext): Promise<HttpCaseResult>;
}

// ---------------------------------------------------------------------------------------------
// The static root, for the "never outside gateway/web/dist" check.

export interface DistIndex {
  files: Buffer[];
  hashes: Set<string>;
  /** Strings from files outside dist that no response may contain. */
  markers: Array<{ file: string; marker: Buffer }>;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

export function indexDist(distDir: string, root: string): DistIndex {
  const files: Buffer[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(readFileSync(p));
    }
  };
  walk(distDir);
  const markers: DistIndex["markers"] = [];
  const add = (file: string, marker: string) => {
    try {
      if (readFileSync(file, "utf8").includes(marker)) markers.push({ file, marker: Buffer.from(marker) });
    } catch {
      // not on this machine
    }
  };
  add(join(root, "package.json"), '"name": "sleepy-sensors"');
  add(join(root, "tsconfig.json"), '"compilerOptions"');
  add(join(root, "gateway/src/config.ts"), "export function parseConfig");
  add(join(root, "gateway/web/build.ts"), "import");
  add("/etc/passwd", "root:x:0:0:");
  add(join(root, ".git/HEAD"), "ref: refs/");
  // A marker must not occur in dist itself (that would be a false alarm).
  const filtered = markers.filter((m) => !files.some((f) => f.includes(m.marker)));
  return { files, hashes: new Set(files.map(sha)), markers: filtered };
}

// ---------------------------------------------------------------------------------------------
// Raw requests and a response reader.

const CRLF = "\r\n";

/** Encodes a request; `close` adds Connection: close (the default for one request per socket). */
export function encode(req: Req, close = true): Buffer {
  if (req.raw) return req.raw;
  const head: Buffer[] = [Buffer.from(`${req.method} ${req.target} HTTP/1.1${CRLF}`, "latin1")];
  const names = new Set(req.headers.map(([n]) => n.toLowerCase()));
  if (!names.has("host")) head.push(Buffer.from(`Host: 127.0.0.1${CRLF}`));
  for (const [n, v] of req.headers) head.push(Buffer.from(`${n}: `, "latin1"), typeof v === "string" ? Buffer.from(v, "latin1") : v, Buffer.from(CRLF));
  if (req.body && !names.has("content-length") && !names.has("transfer-encoding")) head.push(Buffer.from(`Content-Length: ${req.body.length}${CRLF}`));
  if (!names.has("connection")) head.push(Buffer.from(`Connection: ${close ? "close" : "keep-alive"}${CRLF}`));
  head.push(Buffer.from(CRLF));
  if (req.body) head.push(req.body);
  return Buffer.concat(head);
}

class ResponseReader {
  readonly responses: HttpResponse[] = [];
  serverClosed = false;
  private buf: Buffer = Buffer.alloc(0);
  /** Index into `heads` of the request the next response answers (HEAD has no body). */
  private readonly heads: boolean[];
  private stopped = false;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly socket: Socket,
    heads: boolean[],
  ) {
    this.heads = heads;
    socket.on("data", (d: Buffer) => {
      if (this.stopped) return;
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse(false);
      this.notify();
    });
    socket.on("error", () => undefined);
    socket.on("end", () => socket.end());
    socket.on("close", () => {
      this.serverClosed = !this.destroyedByUs;
      if (!this.stopped) this.parse(true);
      this.notify();
    });
  }

  destroyedByUs = false;

  /** Stop parsing (an SSE stream never ends). */
  get sse(): boolean {
    return this.stopped;
  }

  until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const l = () => {
        if (check()) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(l);
        resolve(v);
      };
      this.listeners.add(l);
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private parse(atClose: boolean): void {
    for (;;) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = this.buf.subarray(0, end).toString("latin1").split("\r\n");
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(head[0]);
      const status = m ? Number(m[1]) : 0;
      const headers: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) {
          const k = line.slice(0, i).trim().toLowerCase();
          const v = line.slice(i + 1).trim();
          headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
        }
      }
      const rest = this.buf.subarray(end + 4);
      if (status >= 100 && status < 200) {
        this.buf = rest; // 100 Continue: the real answer follows
        continue;
      }
      const isHead = this.heads[this.responses.length] ?? false;
      if ((headers["content-type"] ?? "").startsWith("text/event-stream")) {
        this.responses.push({ status, headers, body: rest, sse: true });
        this.stopped = true;
        return;
      }
      let body: Buffer;
      if (isHead || status === 204 || status === 304) {
        body = Buffer.alloc(0);
        this.buf = rest;
      } else if ((headers["transfer-encoding"] ?? "").toLowerCase().includes("chunked")) {
        const chunks: Buffer[] = [];
        let pos = 0;
        let done = false;
        for (;;) {
          const lineEnd = rest.indexOf("\r\n", pos);
          if (lineEnd === -1) break;
          const size = parseInt(rest.subarray(pos, lineEnd).toString("latin1"), 16);
          if (!Number.isFinite(size)) break;
          if (size === 0) {
            const trailerEnd = rest.indexOf("\r\n", lineEnd + 2);
            if (trailerEnd === -1) break;
            pos = trailerEnd + 2;
            done = true;
            break;
          }
          if (rest.length < lineEnd + 2 + size + 2) break;
          chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
          pos = lineEnd + 2 + size + 2;
        }
        if (!done) {
          if (atClose) this.responses.push({ status, headers, body: Buffer.concat(chunks), sse: false });
          if (atClose) this.buf = Buffer.alloc(0);
          return;
        }
        body = Buffer.concat(chunks);
        this.buf = rest.subarray(pos);
      } else if (headers["content-length"] !== undefined) {
        const n = Number(headers["content-length"]);
        if (rest.length < n) {
          if (atClose) {
            this.responses.push({ status, headers, body: rest, sse: false });
            this.buf = Buffer.alloc(0);
          }
          return;
        }
        body = rest.subarray(0, n);
        this.buf = rest.subarray(n);
      } else {
        if (!atClose) return; // body until close
        body = rest;
        this.buf = Buffer.alloc(0);
      }
      this.responses.push({ status, headers, body: Buffer.from(body), sse: false });
    }
  }
}

/** Pieces of a request: bytes, or a pause in ms between them (slow senders). */
type Piece = Buffer | number;

interface ExchangeOptions {
  /** Requests on this connection (pipelined), for their expectations and HEAD handling. */
  reqs: Req[];
  /** The last byte of the last request was sent (else: a body that never ends). */
  complete: boolean;
  /** Keep an SSE stream open, paused, until release() (slow reader). */
  hold?: boolean;
}

const STATIC_PREFIXES = ["/api", "/events", "/healthz", "/metrics"];

export async function exchange(ctx: HttpContext, pieces: Piece[], o: ExchangeOptions): Promise<HttpCaseResult> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = tcpConnect({ host: ctx.target.host, port: ctx.target.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`TCP connect to the gateway took over ${ctx.answerMs} ms`));
    }, ctx.answerMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const reader = new ResponseReader(
    socket,
    o.reqs.map((r) => r.method === "HEAD"),
  );
  const want = o.reqs.length;
  const settled = () => reader.responses.length >= want || reader.sse || socket.destroyed || reader.serverClosed;
  try {
    for (const p of pieces) {
      if (typeof p === "number") {
        if (await reader.until(() => socket.destroyed, p)) break;
        continue;
      }
      if (socket.destroyed) break;
      await new Promise<void>((resolve) => socket.write(p, () => resolve()));
    }
    const answered = await reader.until(settled, o.complete ? ctx.answerMs : ctx.holdMs);
    const result = judge(ctx, o.reqs, reader.responses);
    if (o.hold && reader.sse) {
      socket.pause();
      const release = () => {
        reader.destroyedByUs = true;
        socket.destroy();
      };
      return { ...result, outcome: "held", release };
    }
    if (!answered || reader.responses.length < want) {
      if (reader.sse) return result;
      if (reader.serverClosed || socket.destroyed) {
        const missing = want - reader.responses.length;
        for (let i = 0; i < missing; i++) result.statuses.push(0);
        return { ...result, outcome: reader.responses.length ? result.outcome : "closed-without-response" };
      }
      if (!o.complete) return { ...result, outcome: reader.responses.length ? result.outcome : "incomplete" };
      return { ...result, outcome: "no-response", hang: `${want - reader.responses.length} of ${want} requests unanswered after ${ctx.answerMs} ms` };
    }
    return result;
  } finally {
    if (!o.hold || !reader.sse) {
      reader.destroyedByUs = !reader.serverClosed;
      socket.destroy();
    }
  }
}

function judge(ctx: HttpContext, reqs: Req[], responses: HttpResponse[]): HttpCaseResult {
  const violations: string[] = [];
  const contract: string[] = [];
  responses.forEach((res, i) => {
    const req = reqs[i];
    const what = req ? `${req.method} ${req.target.slice(0, 120)}` : `response ${i + 1}`;
    if (res.status >= 500) violations.push(`${res.status} for ${what}: ${res.body.subarray(0, 200).toString()}`);
    for (const m of ctx.dist.markers) {
      if (res.body.includes(m.marker)) violations.push(`served ${m.file} (${res.status}) for ${what}`);
    }
    if (req?.static && !res.sse && (res.status === 200 || res.status === 206) && req.method !== "HEAD") {
      const ok = res.status === 200 ? ctx.dist.hashes.has(sha(res.body)) : ctx.dist.files.some((f) => f.includes(res.body));
      const json = (res.headers["content-type"] ?? "").startsWith("application/json");
      if (!ok && !json) violations.push(`static ${res.status} for ${what} is not a file of gateway/web/dist (${res.body.length} bytes)`);
    }
    if (req?.expect && !req.expect.ok(res.status)) contract.push(`${what}: got ${res.status}, ${req.expect.rule}`);
  });
  const outcome = responses.length ? `${Math.floor(responses[0].status / 100)}xx` : "none";
  return { statuses: responses.map((r) => r.status), outcome, requests: reqs.length, violations, contract };
}

// ---------------------------------------------------------------------------------------------
// Expected statuses, from docs/protocol.md (and the route's documented limits).

const is = (rule: string, ...codes: number[]): Expectation => ({ rule: `expected ${codes.join(" or ")} (${rule})`, ok: (s) => codes.includes(s) });
const clientError = (rule: string): Expectation => ({ rule: `expected a 4xx (${rule})`, ok: (s) => s >= 400 && s < 500 });

/** MQTT 3.1.1 §4.7 filter validity (plus: no NUL, non-empty), written from the spec, not from the gateway. */
export function validFilter(f: string): boolean {
  if (f.length === 0 || f.includes("\u0000") || Buffer.byteLength(f) > 65535) return false;
  const levels = f.split("/");
  return levels.every((l, i) => (!l.includes("#") || (l === "#" && i === levels.length - 1)) && (!l.includes("+") || l === "+"));
}

/** GET /events: 401 without a valid token, 400 bad filter or too many, 403 outside the token, 400 bad id, else 200. */
function eventsStatus(p: Principal | undefined, filters: string[], lastId: string | undefined): number {
  if (!p) return 401;
  if (filters.length > 32 || !filters.every(validFilter)) return 400;
  const eff = filters.length ? filters : [...p.read];
  // "#" covers every filter but those starting with "$" (MQTT §4.7.2); "sensors/hx-1/#" covers what starts with its two levels.
  const covered = p.read[0] === "#" ? eff.every((f) => !f.startsWith("$")) : eff.every((f) => f === "sensors/hx-1" || f.startsWith("sensors/hx-1/"));
  if (!covered) return 403;
  if (lastId !== undefined && lastId !== "" && !/^\d{1,15}$/.test(lastId)) return 400;
  return 200;
}

const enc = encodeURIComponent;
const bearer = (p: Principal): [string, string] => ["Authorization", `Bearer ${p.token}`];
const word = (r: Rng, min = 1, max = 8) => r.word("abcdefghijklmnopqrstuvwxyz0123456789-_", min, max);
const get = (target: string, headers: Array<[string, string | Buffer]> = [], extra: Partial<Req> = {}): Req => ({ method: "GET", target, headers, ...extra });
const sseHeaders = (p: Principal): Array<[string, string]> => [bearer(p), ["Accept", "text/event-stream"]];

const BAD_FILTERS = ["a/#/b", "+x", "x+", "#/a", "a/b#", "##", "a/+b/c", "", "a\u0000b", "\u0000", "sensors/#/telemetry", "a//#/", "++", "#+", "sensors/+x/telemetry", "a/b/c#"];
const GOOD_FILTERS = ["#", "+", "sensors/#", "sensors/+/telemetry", "sensors/hx-1/#", "a//b", "/", "+/+/+", "sensors/é/x", " ", "a b", "%", "?&=", "sensors/hx-1"];

/** A random filter from a hostile alphabet (valid or not: the expectation is computed). */
const randomFilter = (r: Rng): string => r.word("ab/+#$\u0000é %", 0, 12);

/** JSON of a command body, valid or broken in one place (docs/protocol.md "Command"). */
function commandBody(r: Rng): { body: Buffer; valid: boolean | undefined } {
  const valid: Array<Record<string, unknown>> = [{ op: "ping" }, { op: "reboot" }, { op: "set-interval", seconds: r.range(5, 86400) }, { op: "stay-awake", seconds: r.range(1, 3600) }];
  switch (r.int(8)) {
    case 0:
      return { body: Buffer.from(JSON.stringify(r.pick(valid))), valid: true };
    case 1: {
      const b = r.pick<Record<string, unknown>>([
        { op: "set-interval", seconds: r.pick([4, 86401, 5.5, "300", null, -1, 1e308]) },
        { op: "stay-awake", seconds: r.pick([0, 3601, 1.5, "60", true]) },
        { op: r.pick(["PING", "bogus", "", "__proto__", 1, null]) },
        { op: "ping", extra: 1 },
        { op: "ping", id: "c-1" },
        { seconds: 300 },
        {},
      ]);
      return { body: Buffer.from(JSON.stringify(b)), valid: false };
    }
    case 2:
      return { body: Buffer.from(r.pick(['{"op":"ping"', "{", "", "op=ping", "null", "[]", '"ping"', "42", '{"op":"ping"}x', "{'op':'ping'}", '{"op":"ping",}', "\u0000"])), valid: false };
    case 3: {
      const depth = r.range(100, 2000);
      return { body: Buffer.from("[".repeat(depth) + "]".repeat(depth)), valid: false };
    }
    case 4:
      return { body: Buffer.from('{"__proto__":{"op":"ping"},"constructor":{"prototype":{"op":"ping"}}}'), valid: false };
    case 5:
      return { body: Buffer.from('{"op":"ping","op":"reboot"}'), valid: true }; // duplicate keys: last wins (JSON.parse)
    case 6:
      return { body: r.bytes(r.range(1, 200)), valid: undefined };
    default:
      return { body: Buffer.concat([Buffer.from('{"op":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), valid: undefined };
  }
}

const commandsPath = (id: string) => `/api/devices/${enc(id)}/commands`;

// ---------------------------------------------------------------------------------------------
// Categories.

interface Made {
  label: string;
  reqs: Req[];
  pieces?: Piece[];
  complete?: boolean;
  hold?: boolean;
}
type Make = (r: Rng) => Made;

const TRAVERSAL_SEGMENTS = ["..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "..%2f", "..%5c", "%252e%252e", "..\\", "....//", "%c0%ae%c0%ae", "%uff0e%uff0e", "..;", ".", "%2e", "..%00", "..%252f", "%%32%65%%32%65", ".../", "%5c.."];
const TRAVERSAL_TARGETS = ["package.json", "etc/passwd", "gateway/src/config.ts", ".git/HEAD", "tsconfig.json", "gateway/web/build.ts", "web/build.ts", "build.ts", "src/config.ts", "../package.json", "index.html/../../package.json", "app.js%00.html", "app.js/..%2f..%2fpackage.json"];

const cat: Record<string, Make> = {
  "events: bad topic filter": (r) => {
    const f = r.pick(BAD_FILTERS);
    const n = r.range(1, 3);
    const filters = [...Array.from({ length: n - 1 }, () => r.pick(GOOD_FILTERS.filter((g) => !g.startsWith("$")))), f];
    const q = filters.map((x) => `topic=${enc(x)}`).join("&");
    return { label: `topic=${JSON.stringify(f)}`, reqs: [get(`/events?${q}`, sseHeaders(HOSTILE_TOKENS.full), { expect: is("docs/protocol.md: invalid filter -> 400 invalid_topic_filter", 400) })] };
  },

  "events: random topic filters": (r) => {
    const p = r.chance(0.8) ? HOSTILE_TOKENS.full : HOSTILE_TOKENS.limited;
    const filters = Array.from({ length: r.range(1, 4) }, () => (r.chance(0.5) ? randomFilter(r) : r.pick([...GOOD_FILTERS, ...BAD_FILTERS, "$SYS/#", "$x"])));
    const q = filters.map((x) => `topic=${enc(x)}`).join("&");
    const status = eventsStatus(p, filters, undefined);
    return { label: `${p.name} ${JSON.stringify(filters)} -> ${status}`, reqs: [get(`/events?${q}`, sseHeaders(p), { expect: is("docs/protocol.md GET /events, MQTT §4.7 filters, token read filters", status) })] };
  },

  "events: filter count and size": (r) => {
    const kind = r.pick(["33", "many", "32", "70KB", "16KB-one"] as const);
    const filters =
      kind === "33" ? Array.from({ length: 33 }, (_, i) => `sensors/d${i}/#`)
      : kind === "many" ? Array.from({ length: r.range(34, 1000) }, () => "a")
      : kind === "32" ? Array.from({ length: 32 }, (_, i) => `sensors/d${i}/#`)
      : kind === "70KB" ? ["a/".repeat(35_000) + "b"]
      : ["x".repeat(15_000)];
    const q = filters.map((x) => `topic=${enc(x)}`).join("&");
    const oversized = q.length > 16_000;
    const expect = oversized ? is("URL beyond Node's 16 KB header limit", 431, 400, 414) : is("docs/protocol.md: at most 32 filters", eventsStatus(HOSTILE_TOKENS.full, filters, undefined));
    return { label: `${kind}: ${filters.length} filters, ${q.length} bytes of query`, reqs: [get(`/events?${q}`, sseHeaders(HOSTILE_TOKENS.full), { expect })] };
  },

  "events: bad Last-Event-ID": (r) => {
    const value = r.pick([
      "-1", "1e308", "1E3", "NaN", "Infinity", "-0", "+1", "1.0", "1_000", "0x10", "9".repeat(16), "9".repeat(300), "9".repeat(15), "0", "1", "00000000000001",
      "\u0663\u0664", "\uff11\uff12", "\u00b9", "١٢٣", "1,2", "1 2", "abc", "1abc", `${Number.MAX_SAFE_INTEGER}`, `${2 ** 64}`, "%31",
    ]);
    const via = r.pick(["header", "query", "both"] as const);
    const headers: Array<[string, string | Buffer]> = [...sseHeaders(HOSTILE_TOKENS.full)];
    // Header values go out as UTF-8 bytes (Node reads them back as latin1: still not ASCII digits).
    if (via !== "query") headers.push(["Last-Event-ID", Buffer.from(value, "utf8")]);
    const target = via === "header" ? "/events" : `/events?lastEventId=${enc(via === "both" ? "x" : value)}`;
    // The header wins over the query parameter (docs/protocol.md).
    const effective = via === "query" ? value : Buffer.from(value, "utf8").toString("latin1").trim();
    const status = eventsStatus(HOSTILE_TOKENS.full, [], effective);
    return { label: `${via}: ${JSON.stringify(value)} -> ${status}`, reqs: [get(target, headers, { expect: is("an event id is ^\\d{1,15}$, else 400 invalid_last_event_id; the header wins", status) })] };
  },

  "readings: bad query": (r) => {
    const good = () => String(r.pick([0, 1, r.int(1e6), 1_700_000_000_000]));
    const bad = () => r.pick(["-1", "-5", "abc", "1.5", "1e3", " 1", "0x10", "\u0661", "NaN", "Infinity", "+1", "1,000"]);
    const name = r.pick(["since", "from", "to", "limit"]);
    const broken = r.chance(0.7);
    const params: Record<string, string> = {};
    for (const k of ["since", "from", "to", "limit"]) if (k === name || r.chance(0.3)) params[k] = k === "limit" ? String(r.range(1, 1000)) : good();
    if (broken) params[name] = name === "limit" && r.chance(0.5) ? r.pick(["0", "1001", "99999", "-1"]) : bad();
    const q = Object.entries(params).map(([k, v]) => `${k}=${enc(v)}`).join("&");
    return {
      label: `${q} -> ${broken ? 400 : 200}`,
      reqs: [get(`/api/devices/hx-${r.int(8)}/readings?${q}`, [bearer(HOSTILE_TOKENS.full)], { expect: is("docs/protocol.md: each parameter a non-negative integer, limit <= 1000, else 400 invalid_query", broken ? 400 : 200) })],
    };
  },

  "commands: bad body": (r) => {
    const { body, valid } = commandBody(r);
    const ct = r.pick(["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", ""]);
    const headers: Array<[string, string]> = [bearer(HOSTILE_TOKENS.full)];
    if (ct) headers.push(["Content-Type", ct]);
    // Only JSON bodies sent as JSON are held to the contract; other content types: anything but a 5xx.
    const expect = valid === undefined || !ct.startsWith("application/json") ? undefined : is("docs/protocol.md Command: 202 for a valid body, 400 otherwise", valid ? 202 : 400);
    return { label: `${ct || "no content type"}: ${JSON.stringify(body.subarray(0, 60).toString("latin1"))}`, reqs: [{ method: "POST", target: commandsPath(`hx-${r.int(8)}`), headers, body, expect }] };
  },

  "commands: oversized body": (r) => {
    const kind = r.pick(["content-length", "declared-huge", "chunked-over", "expect-continue"] as const);
    const headers: Array<[string, string]> = [bearer(HOSTILE_TOKENS.full), ["Content-Type", "application/json"]];
    const path = commandsPath(`hx-${r.int(8)}`);
    const size = r.range(4097, 70_000);
    const json = Buffer.from(`{"op":"ping","pad":"${"x".repeat(size)}"}`);
    const rule = is("command bodies are at most 4096 bytes -> 413", 413);
    if (kind === "content-length") return { label: `${json.length} bytes`, reqs: [{ method: "POST", target: path, headers, body: json, expect: rule }] };
    if (kind === "declared-huge") {
      const declared = r.pick(["4097", "1000000000", "99999999999999999999"]);
      const req: Req = { method: "POST", target: path, headers: [...headers, ["Content-Length", declared]], expect: declared.length > 16 ? clientError("absurd Content-Length") : rule };
      return { label: `Content-Length ${declared}, no body`, reqs: [req], pieces: [encode(req)], complete: false };
    }
    if (kind === "expect-continue") {
      const req: Req = { method: "POST", target: path, headers: [...headers, ["Expect", "100-continue"], ["Content-Length", String(json.length)]], expect: rule };
      return { label: `Expect: 100-continue, ${json.length} bytes`, reqs: [req], pieces: [encode(req), json], complete: true };
    }
    const req: Req = { method: "POST", target: path, headers: [...headers, ["Transfer-Encoding", "chunked"]] };
    const chunks: Piece[] = [encode(req)];
    for (let off = 0; off < json.length; off += 1000) {
      const c = json.subarray(off, off + 1000);
      chunks.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from("\r\n"));
    }
    chunks.push(Buffer.from("0\r\n\r\n"));
    return { label: `chunked ${json.length} bytes`, reqs: [{ ...req, expect: rule }], pieces: chunks, complete: true };
  },

  "commands: body that never ends": (r) => {
    const chunked = r.chance(0.6);
    const headers: Array<[string, string]> = [bearer(HOSTILE_TOKENS.full), ["Content-Type", "application/json"]];
    const req: Req = { method: "POST", target: commandsPath(`hx-${r.int(8)}`), headers: [...headers, chunked ? ["Transfer-Encoding", "chunked"] : ["Content-Length", String(r.range(100, 4096))]] };
    const pieces: Piece[] = [encode(req)];
    const n = r.range(0, 5);
    for (let i = 0; i < n; i++) pieces.push(chunked ? Buffer.from(`5\r\n{"op"\r\n`) : Buffer.from('{"op"'));
    return { label: `${chunked ? "chunked" : "Content-Length"}, ${n} pieces, no end`, reqs: [req], pieces, complete: false };
  },

  "series: bad query": (r) => {
    const params: Record<string, string> = { metric: r.pick(["temperature", "humidity", "battery", "x_1"]) };
    const broken = r.chance(0.7);
    if (r.chance(0.5)) params.step = r.pick(["auto", "raw", "1m", "1h", "1d"]);
    if (r.chance(0.5)) params.from = String(r.int(1_700_000_000_000));
    if (broken) {
      const name = r.pick(["metric", "step", "from", "to"]);
      params[name] =
        name === "metric"
          ? r.pick(["", "Temp", "1a", "a.b", "a b", "$x", "a".repeat(33), "%00", "\u00e9"])
          : name === "step"
            ? r.pick(["5m", "RAW", "", "1M", "auto ", "1h;", "-1"])
            : r.pick(["-1", "abc", "1.5", "1e3", "NaN", "Infinity", "+1", "99999999999999999999"]);
    }
    const q = Object.entries(params).map(([k, v]) => `${k}=${enc(v)}`).join("&");
    return {
      label: `${q} -> ${broken ? 400 : 200}`,
      reqs: [get(`/api/devices/hx-${r.int(8)}/series?${q}`, [bearer(HOSTILE_TOKENS.full)], { expect: is("docs/protocol.md series: metric a reading key, step auto|raw|1m|1h|1d, times non-negative integers", broken ? 400 : 200) })],
    };
  },

  "alert rules: bad body": (r) => {
    const valid = [
      '{"kind":"threshold","metric":"temperature","above":30}',
      '{"kind":"threshold","metric":"humidity","below":10,"hysteresis":2,"forS":60,"forReadings":3,"scope":{"devices":"hx-*"}}',
      '{"kind":"battery","below":3.3}',
      '{"kind":"offline","enabled":false}',
      '{"kind":"overdue","factor":3,"graceS":10,"scope":{"topic":"sensors/+/status"}}',
    ];
    const invalid = [
      "{}", "[]", "null", "1", '"x"', '{"kind":"threshold"}', '{"kind":"threshold","metric":"t","above":1,"below":2}',
      '{"kind":"threshold","metric":"T","above":1}', '{"kind":"battery","below":"3"}', '{"kind":"battery","below":1e999}',
      '{"kind":"overdue","factor":0.5}', '{"kind":"offline","scope":{"topic":"a/#/b"}}', '{"kind":"offline","scope":{"devices":"a/b"}}',
      '{"kind":"offline","extra":1}', '{"kind":"threshold","metric":"t","above":1,"hysteresis":-1}', '{"kind":"nope"}',
      '{"kind":"threshold","metric":"t","above":1,"forReadings":0.5}', '{"kind":"offline","severity":"loud"}',
    ];
    const kind = r.pick(["valid", "invalid", "bytes", "not json"] as const);
    const body =
      kind === "valid" ? Buffer.from(r.pick(valid)) : kind === "invalid" ? Buffer.from(r.pick(invalid)) : kind === "bytes" ? r.bytes(r.range(1, 300)) : Buffer.from('{"kind":"offline"');
    const id = r.pick(["r1", "hx-rule", "battery-low", "a".repeat(64)]);
    const expect = kind === "bytes" ? undefined : is("docs/protocol.md Alerts: a valid rule 200, anything else 400 invalid_rule / invalid_json", kind === "valid" ? 200 : 400);
    return {
      label: `${kind}: ${JSON.stringify(body.subarray(0, 60).toString("latin1"))}`,
      reqs: [{ method: "PUT", target: `/api/alert-rules/${id}`, headers: [bearer(HOSTILE_TOKENS.full), ["Content-Type", "application/json"]], body, expect }],
    };
  },

  "devices: bad PATCH body": (r) => {
    const invalid = ['{"name":1}', '{"name":{}}', '{"location":[]}', `{"name":"${"x".repeat(65)}"}`, '{"name":"a\u0000b"}', '{"nick":"x"}', "[]", "null", "3", '"x"', "{"];
    const body = r.chance(0.8) ? Buffer.from(r.pick(invalid)) : r.bytes(r.range(1, 200));
    const textual = !body.equals(Buffer.alloc(0)) && invalid.includes(body.toString("latin1"));
    return {
      label: JSON.stringify(body.subarray(0, 60).toString("latin1")),
      reqs: [{ method: "PATCH", target: `/api/devices/hx-${r.int(8)}`, headers: [bearer(HOSTILE_TOKENS.full), ["Content-Type", "application/json"]], body, expect: textual ? is("docs/protocol.md Device names: a bad body is 400 before any lookup", 400) : undefined }],
    };
  },

  "device ids": (r) => {
    const id = r.pick([
      "a".repeat(65), "a".repeat(1000), "..", ".", "%2e%2e", "a%2Fb", "a/b", "%00", "a%00b", "é", "%C3%A9", "a b", "a%20b", "$SYS", "+", "%23", "%2B", "*", "a.b", "a:b", "%ff", "%", "%%", "a\\b", "%5c",
    ]);
    const kind = r.pick(["readings", "commands", "command"] as const);
    const target = kind === "readings" ? `/api/devices/${id}/readings` : kind === "commands" ? `/api/devices/${id}/commands` : `/api/devices/${id}/commands/c-${word(r)}`;
    const req: Req = { method: kind === "commands" ? "POST" : "GET", target, headers: [bearer(HOSTILE_TOKENS.full)], body: kind === "commands" ? Buffer.from('{"op":"ping"}') : undefined, expect: clientError("device ids match ^[A-Za-z0-9_-]{1,64}$") };
    return { label: `${req.method} ${target.slice(0, 80)}`, reqs: [req] };
  },

  "path traversal: static": (r) => {
    const depth = r.range(1, 8);
    const seg = r.pick(TRAVERSAL_SEGMENTS);
    const sep = r.pick(["/", "/", "%2f", "%5c", "\\", "//", "/./"]);
    const target = `/${Array.from({ length: depth }, () => seg).join(sep)}${sep}${r.pick(TRAVERSAL_TARGETS)}`;
    const method = r.pick(["GET", "GET", "HEAD"]);
    const headers: Array<[string, string]> = r.chance(0.2) ? [["Range", r.pick(["bytes=0-", "bytes=0-10", "bytes=-5", "bytes=5-3", "bytes=99999999999999999999-"])]] : [];
    return { label: `${method} ${target}`, reqs: [{ method, target, headers, static: true }] };
  },

  "path traversal: api and events": (r) => {
    const seg = r.pick(TRAVERSAL_SEGMENTS);
    const target = r.pick([
      `/api/devices/${seg}/${seg}/package.json`,
      `/api/${seg}/${seg}/etc/passwd`,
      `/events/${seg}/${seg}/package.json`,
      `/api/devices/hx-1/readings/${seg}/${seg}/${seg}/package.json`,
      `/healthz/${seg}/package.json`,
      `/metrics/${seg}/${seg}/.git/HEAD`,
      `/api/devices/hx-1/commands/${seg}%2f${seg}%2fpackage.json`,
    ]);
    return { label: target, reqs: [get(target, [bearer(HOSTILE_TOKENS.full)], { static: true })] };
  },

  "malformed request": (r) => {
    const raw = r.pick([
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad Header: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n",
      "GET / HTTP/1.1\nHost: 127.0.0.1\n\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\n  folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\u0000b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-\u0001: 1\r\n\r\n",
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 13\r\nContent-Length: 14\r\n\r\n{\"op\":\"ping\"}",
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
      `POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1;${"a".repeat(20_000)}\r\na\r\n0\r\n\r\n`,
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
      "POST /api/devices/hx-1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1 3\r\n\r\n",
      "GET /  HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET / HTTP/1.1 extra\r\nHost: 127.0.0.1\r\n\r\n",
      "GET\t/\tHTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "get / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "BREW / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n",
      "GET / HTTP/1.9\r\nHost: 127.0.0.1\r\n\r\n",
      "GET / HTTP/0.9\r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: evil/../..\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n\r\n",
      `GET / HTTP/1.1\r\nHost: ${"h".repeat(300)}\r\n\r\n`,
      "GET / HTTP/1.1\r\nHost: \u00e9\r\n\r\n",
      "GET http://127.0.0.1/../package.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET http://evil:1/%2e%2e/package.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET ftp://127.0.0.1/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      `${"G".repeat(5000)} / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
      "GET /\u00ff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET /a\u0000b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET /a#frag HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "GET ?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      "\r\n\r\nGET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ]);
    const bytes = Buffer.from(raw, "latin1");
    return { label: JSON.stringify(raw.slice(0, 70)), reqs: [{ method: raw.split(" ")[0].slice(0, 10), target: raw.split(" ")[1] ?? "", headers: [], raw: bytes, static: true }] };
  },

  "huge headers": (r) => {
    const kind = r.pick(["one-20KB", "one-100KB", "many-small", "2000-headers", "cookie-20KB", "url-20KB"] as const);
    const headers: Array<[string, string]> = [bearer(HOSTILE_TOKENS.full)];
    let target = "/api/devices";
    let expect: Expectation | undefined;
    if (kind === "one-20KB") headers.push(["X-Big", "x".repeat(20_000)]);
    if (kind === "one-100KB") headers.push(["X-Big", "x".repeat(100_000)]);
    if (kind === "cookie-20KB") headers.push(["Cookie", Array.from({ length: 2000 }, (_, i) => `c${i}=${"v".repeat(8)}`).join("; ")]);
    if (kind === "url-20KB") target = `/api/devices?${"a=1&".repeat(5000)}`;
    if (kind === "many-small") for (let i = 0; i < 300; i++) headers.push([`X-H${i}`, "v"]);
    if (kind === "2000-headers") for (let i = 0; i < 2100; i++) headers.push([`X${i}`, ""]);
    const size = headers.reduce((s, [n, v]) => s + n.length + v.length + 4, 0) + target.length;
    // Node's 16 KB limit (--max-http-header-size) does not count every byte of the head: only clear cases are held to it.
    if (size > 20_000) expect = is("over Node's 16 KB header limit", 431);
    else if (size < 15_000) expect = is("GET /api/devices with a valid token", 200);
    return { label: `${kind} (${size} bytes of head)`, reqs: [get(target, headers, { expect })] };
  },

  "tokens": (r) => {
    const valid = HOSTILE_TOKENS.full.token;
    const wrong = r.pick(["", "x", valid.slice(0, -1), `${valid}x`, valid.toUpperCase(), `${valid}\u00e9`, "t".repeat(10_000), "null", "undefined", HOSTILE_TOKENS.full.name, valid.replace(/./g, "0")]);
    const how = r.pick(["none", "bearer-wrong", "bearer-malformed", "basic", "query-wrong", "cookie-wrong", "cookie-malformed", "bearer-wins", "query-valid", "cookie-valid", "two-authorization"] as const);
    const headers: Array<[string, string | Buffer]> = [];
    let query = "";
    let ok = false;
    switch (how) {
      case "bearer-wrong":
        headers.push(["Authorization", Buffer.from(`Bearer ${wrong}`, "utf8")]);
        break;
      case "bearer-malformed":
        headers.push(["Authorization", r.pick(["Bearer", "Bearer ", `Bearer ${valid} extra`, `Bearer  ${valid}x`, `Bearer${valid}`, `Token ${valid}`])]);
        break;
      case "basic":
        headers.push(["Authorization", `Basic ${Buffer.from(`u:${valid}`).toString("base64")}`]);
        break;
      case "query-wrong":
        query = `access_token=${enc(wrong)}`;
        break;
      case "cookie-wrong":
        headers.push(["Cookie", `sensors_token=${enc(wrong)}`]);
        break;
      case "cookie-malformed":
        headers.push(["Cookie", r.pick(["sensors_token=%E0%A4%A", "sensors_token=%", "sensors_token", "=;=;sensors_token=\"", `sensors_token="${valid}x"`, ";;;;"])]);
        break;
      case "bearer-wins":
        headers.push(["Authorization", `Bearer ${wrong || "x"}`]);
        query = `access_token=${enc(valid)}`;
        break;
      case "query-valid":
        query = `access_token=${enc(valid)}`;
        ok = true;
        break;
      case "cookie-valid":
        headers.push(["Cookie", `a=b; sensors_token=${valid}; c=d`]);
        ok = true;
        break;
      case "two-authorization":
        headers.push(["Authorization", `Bearer ${wrong || "x"}`], ["Authorization", `Bearer ${valid}`]);
        break;
    }
    const events = r.chance(0.5);
    const target = `${events ? "/events" : "/api/devices"}${query ? `?${query}` : ""}`;
    if (events) headers.push(["Accept", "text/event-stream"]);
    // Node keeps the first of two Authorization headers; the Bearer header wins over query and cookie.
    const expect = ok ? is("a valid token (query or cookie)", 200) : is("docs/protocol.md: 401 unauthorized without a valid token", 401);
    return { label: `${how} ${JSON.stringify(wrong.slice(0, 30))} on ${events ? "/events" : "/api/devices"}`, reqs: [get(target, headers, { expect })] };
  },

  "forbidden for the token": (r) => {
    const p = HOSTILE_TOKENS.limited;
    const kind = r.pick(["events-outside", "readings-other", "command-write", "command-other"] as const);
    const req: Req =
      kind === "events-outside" ? get(`/events?topic=${enc(r.pick(["#", "sensors/+/telemetry", "sensors/hx-2/#", "sensors/#"]))}`, sseHeaders(p))
      : kind === "readings-other" ? get(`/api/devices/hx-${r.range(2, 7)}/readings`, [bearer(p)])
      : { method: "POST", target: commandsPath(kind === "command-write" ? "hx-1" : `hx-${r.range(2, 7)}`), headers: [bearer(p), ["Content-Type", "application/json"]], body: Buffer.from('{"op":"ping"}') };
    return { label: `${kind} ${req.method} ${req.target}`, reqs: [{ ...req, expect: is("docs/protocol.md: 403 when read filters or write right do not cover it", 403) }] };
  },

  "methods": (r) => {
    const method = r.pick(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "POST", "SEARCH"]);
    const target = r.pick(["/api/devices", "/api/devices/hx-1", "/api/devices/hx-1/readings", "/events", "/healthz", "/", "/app.js", "/api/devices/hx-1/commands/c-1"]);
    const body = method === "PUT" || method === "PATCH" || method === "POST" ? Buffer.from('{"op":"ping"}') : undefined;
    return { label: `${method} ${target}`, reqs: [{ method, target, headers: [bearer(HOSTILE_TOKENS.full)], body, expect: clientError("no such route"), static: true }] };
  },

  "ops endpoints": (r) => {
    const metrics = r.chance(0.1);
    const target = `${metrics ? "/metrics" : "/healthz"}${r.chance(0.5) ? `?${r.pick(["x=%ff", "%", "a=1&a=2", "topic=%23", "?".repeat(100)])}` : ""}`;
    const headers: Array<[string, string]> = r.chance(0.5) ? [["Accept-Encoding", "gzip, br, *;q=0"], ["X-Forwarded-For", "1.2.3.4, evil"], ["Authorization", "Bearer junk"]] : [];
    return { label: target, reqs: [get(target, headers, { expect: is("ops endpoints are public", 200) })] };
  },

  "slow sender": (r) => {
    const req = get("/api/devices", [bearer(HOSTILE_TOKENS.full)], { expect: is("a complete, valid request, however slowly sent", 200) });
    const bytes = encode(req);
    const n = r.range(3, 10);
    const pieces: Piece[] = [];
    for (let i = 0; i < n; i++) {
      pieces.push(bytes.subarray(Math.floor((i * bytes.length) / n), Math.floor(((i + 1) * bytes.length) / n)));
      if (i < n - 1) pieces.push(r.range(20, 120));
    }
    return { label: `${n} pieces`, reqs: [req], pieces, complete: true };
  },

  "slow SSE reader": (r) => {
    const filters = r.pick([[], ["#"], ["sensors/+/telemetry"], ["sensors/hx-1/#"]]);
    const q = filters.map((f) => `topic=${enc(f)}`).join("&");
    return { label: `GET /events${q ? `?${q}` : ""} then never reads`, reqs: [get(`/events${q ? `?${q}` : ""}`, sseHeaders(HOSTILE_TOKENS.full), { expect: is("a valid stream", 200) })], hold: true };
  },

  "pipelined": (r) => {
    const n = r.range(2, 8);
    const pool = (): Req =>
      r.pick<() => Req>([
        () => get("/healthz", [], { expect: is("ops", 200) }),
        () => get("/api/devices", [bearer(HOSTILE_TOKENS.full)], { expect: is("valid", 200) }),
        () => get("/api/devices/hx-1/readings?limit=0", [bearer(HOSTILE_TOKENS.full)], { expect: is("invalid_query", 400) }),
        () => get("/api/devices", [], { expect: is("no token", 401) }),
        () => ({ method: "POST", target: commandsPath("hx-1"), headers: [bearer(HOSTILE_TOKENS.full)], body: Buffer.from("{"), expect: is("invalid_json", 400) }),
        () => get(`/${r.pick(TRAVERSAL_SEGMENTS)}/package.json`, [], { static: true }),
      ])();
    const junk = r.chance(0.3);
    // With junk after the last request, Node answers the parse error with a 400 as soon as it reads it,
    // ahead of the earlier requests' answers, and closes: only "no 5xx" holds then.
    const reqs = Array.from({ length: n }, pool).map((q) => (junk ? { ...q, expect: undefined } : q));
    const parts = reqs.map((q, i) => encode(q, i === n - 1));
    if (junk) parts.push(Buffer.from("GARBAGE\r\n\r\n"));
    return { label: `${n} requests on one connection${junk ? " + garbage" : ""}`, reqs, pieces: [Buffer.concat(parts)], complete: true };
  },
};

const WEIGHTS: Array<readonly [string, number]> = [
  ["events: bad topic filter", 8],
  ["events: random topic filters", 8],
  ["events: filter count and size", 2],
  ["events: bad Last-Event-ID", 8],
  ["readings: bad query", 6],
  ["commands: bad body", 10],
  ["commands: oversized body", 4],
  ["commands: body that never ends", 1.5],
  ["series: bad query", 3],
  ["alert rules: bad body", 3],
  ["devices: bad PATCH body", 2],
  ["device ids", 6],
  ["path traversal: static", 10],
  ["path traversal: api and events", 4],
  ["malformed request", 10],
  ["huge headers", 2],
  ["tokens", 9],
  ["forbidden for the token", 4],
  ["methods", 3],
  ["ops endpoints", 1],
  ["slow sender", 0.7],
  ["slow SSE reader", 0.5],
  ["pipelined", 3],
];

export const HTTP_CATEGORIES = WEIGHTS.map(([c]) => c);

export function httpCase(r: Rng, index: number, seed: number): HttpCase {
  const category = r.weighted(WEIGHTS);
  const made = cat[category](r);
  const pieces = made.pieces ?? [Buffer.concat(made.reqs.map((q, i) => encode(q, i === made.reqs.length - 1)))];
  const wire = Buffer.concat(pieces.filter((p): p is Buffer => typeof p !== "number")).subarray(0, 400);
  return {
    index,
    seed,
    category,
    label: made.label,
    wire,
    run: (ctx) => exchange(ctx, pieces, { reqs: made.reqs, complete: made.complete ?? true, hold: made.hold }),
  };
}
