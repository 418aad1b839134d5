/** Heartbeats, retry hint and graceful shutdown of streams (issue 4 "Streams" and "Ops"). */
import { describe, expect, it } from "vitest";
import { spawnGateway, startTestGateway, tempDir } from "../helpers/gateway.ts";
import { connectSse } from "../helpers/sse.ts";
import { rmSync } from "node:fs";

describe("stream housekeeping", () => {
  it("sends retry: first and a heartbeat comment every interval", async () => {
    const gw = await startTestGateway({ config: { sse: { heartbeatMs: 100, retryMs: 1234 } } });
    try {
      const sse = await connectSse(gw.url);
      await sse.waitFor(() => sse.comments.filter((c) => c.trim() === "hb").length >= 3, { message: "3 heartbeats" });
      expect(sse.retry).toBe(1234);
      sse.close();
    } finally {
      await gw.close();
    }
  });

  it("ends open streams and exits 0 on SIGTERM", async () => {
    const dataDir = tempDir();
    const gw = await spawnGateway({ dataDir });
    try {
      const a = await connectSse(gw.url);
      const b = await connectSse(gw.url, { topics: ["sensors/+/status"] });
      expect(await gw.stop()).toBe(0);
      await a.waitForEnd();
      await b.waitForEnd();
      expect(a.isEnded && b.isEnded).toBe(true);
      expect(gw.output()).not.toMatch(/"level":50/); // no error logs on the way out
    } finally {
      await gw.kill9();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
