import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/helpers/ports.ts";
import { REPO_ROOT } from "../boards/catalog.ts";

// Runs the shipped nginx snippet (hardware/pi/nginx-sleepy-sensors.conf) in front of a live SSE stream.
// The upstream here is deliberately minimal and does NOT send X-Accel-Buffering: the proxy config alone
// must deliver each event at once, uncompressed.
const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => existsSync(p));
if (!NGINX && process.env.CI === "true") throw new Error("nginx is required under CI=true (apt-get install nginx-light)");
if (!NGINX) console.warn("SKIPPED hardware/pi/nginx.test.ts: nginx is not installed (apt-get install nginx-light)");

async function waitFor<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.skipIf(!NGINX)("nginx reverse proxy snippet", () => {
  let dir: string;
  let upstream: Server;
  let nginx: ChildProcess | undefined;
  let proxyPort: number;
  const streams: ServerResponse[] = [];
  const seenHeaders: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "nginx-"));
    const upstreamPort = await freePort();
    proxyPort = await freePort();
    upstream = createServer((req, res) => {
      seenHeaders.push(req.headers);
      if (req.url?.startsWith("/events")) {
        res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
        res.write(`retry: 2000\n\nid: 1\nevent: telemetry\ndata: {"deviceId":"kitchen","seq":1}\n\n`);
        streams.push(res);
      } else {
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ ok: true, padding: "x".repeat(2000) }));
      }
    });
    await new Promise<void>((r) => upstream.listen(upstreamPort, "127.0.0.1", r));

    const snippet = readFileSync(join(REPO_ROOT, "hardware/pi/nginx-sleepy-sensors.conf"), "utf8")
      .replace("server 127.0.0.1:8080;", `server 127.0.0.1:${upstreamPort};`)
      .replace(/listen 80;/, `listen 127.0.0.1:${proxyPort};`)
      .replace(/\s*listen \[::\]:80;/, "")
      .replace("/var/log/nginx/", `${dir}/`);
    expect(snippet).toContain(`127.0.0.1:${upstreamPort}`);
    writeFileSync(join(dir, "sleepy-sensors.conf"), snippet);
    for (const t of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, t));
    writeFileSync(
      join(dir, "nginx.conf"),
      `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  include ${dir}/sleepy-sensors.conf;
}
`,
    );
    const check = spawnSync(NGINX!, ["-t", "-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], { encoding: "utf8" });
    expect(check.status, check.stderr).toBe(0);
    nginx = spawn(NGINX!, ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], { stdio: "ignore" });
    await waitFor("nginx to listen", 10_000, async () => {
      try {
        return (await fetch(`http://127.0.0.1:${proxyPort}/healthz`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    });
  });

  afterAll(async () => {
    for (const s of streams) s.end();
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx!.once("exit", r));
      nginx.kill("SIGTERM");
      await exited;
    }
    await new Promise((r) => upstream?.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("passes each SSE event through at once, uncompressed, with Last-Event-ID forwarded", async () => {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${proxyPort}/events?access_token=tok-secret-123`, {
      headers: { "Accept-Encoding": "gzip, deflate, br", "Last-Event-ID": "41" },
      signal: controller.signal,
    });
    try {
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream");
      expect(res.headers.get("content-encoding")).toBeNull();
      const reader = res.body!.getReader();
      let text = "";
      const readUntil = (needle: string) =>
        waitFor(`"${needle}" through nginx`, 3_000, async () => {
          while (!text.includes(needle)) {
            const { value, done } = await reader.read();
            if (done) return undefined;
            text += new TextDecoder().decode(value);
          }
          return true;
        });
      // The upstream keeps the stream open: the first event only arrives if nginx does not buffer it.
      await readUntil('"seq":1');
      streams[0].write(`id: 2\nevent: telemetry\ndata: {"deviceId":"kitchen","seq":2}\n\n`);
      const sentAt = Date.now();
      await readUntil('"seq":2');
      expect(Date.now() - sentAt).toBeLessThan(1_000);
      expect(seenHeaders.find((h) => h["last-event-id"])?.["last-event-id"]).toBe("41");
    } finally {
      controller.abort();
    }
    // access_token in the query string stays out of the access log.
    const log = await waitFor("the access log line", 3_000, () => {
      const file = join(dir, "sleepy-sensors.access.log");
      const content = existsSync(file) ? readFileSync(file, "utf8") : "";
      return content.includes("/events") ? content : undefined;
    });
    expect(log).not.toContain("tok-secret-123");
  });

  it("still compresses the JSON API", async () => {
    const res = await fetch(`http://127.0.0.1:${proxyPort}/api/devices`, { headers: { "Accept-Encoding": "gzip" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-encoding")).toBe("gzip");
    expect((await res.json()).ok).toBe(true);
  });
});
