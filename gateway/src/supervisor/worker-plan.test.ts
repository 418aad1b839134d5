import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config.ts";
import { parseServerArgs } from "./args.ts";
import { planWorkers } from "./worker-plan.ts";

describe("parseServerArgs", () => {
  it("runs one gateway without arguments, the supervisor with --workers", () => {
    expect(parseServerArgs([])).toEqual({ mode: "single" });
    expect(parseServerArgs(["--workers", "4"])).toEqual({ mode: "workers", workers: 4, basePort: undefined });
    expect(parseServerArgs(["--workers=3", "--base-port", "9000"])).toEqual({ mode: "workers", workers: 3, basePort: 9000 });
  });

  it.each([
    [["--workers", "65"], /expected an integer 1\.\.64/],
    [["--workers", "1.5"], /expected an integer 1\.\.64/],
    [["--workers", "2", "--base-port", "70000"], /--base-port "70000": expected an integer 1\.\.65535/],
    [["extra"], /Unexpected argument 'extra'/],
  ])("refuses %j", (argv, message) => {
    expect(() => parseServerArgs(argv)).toThrow(message);
  });
});

describe("planWorkers", () => {
  it("gives worker i port base+i, <dataDir>/worker-i, <clientId>-i, the shared token file and the broker login", () => {
    const config = parseConfig({ dataDir: "data", mqtt: { clientId: "gw" } });
    const plans = planWorkers(config, 2, {
      basePort: 8080,
      adminTokenFile: "/srv/data/admin-token",
      broker: { url: "mqtt://127.0.0.1:1883", username: "$gateway", password: "pw-0123456789" },
    });
    expect(plans).toEqual([0, 1].map((i) => ({
      index: i,
      port: 8080 + i,
      dataDir: resolve("data", `worker-${i}`),
      env: {
        PORT: String(8080 + i),
        DATA_DIR: resolve("data", `worker-${i}`),
        MQTT_CLIENT_ID: `gw-${i}`,
        GATEWAY_WORKER: String(i),
        ADMIN_TOKEN_FILE: "/srv/data/admin-token",
        MQTT_URL: "mqtt://127.0.0.1:1883",
        MQTT_USERNAME: "$gateway",
        MQTT_PASSWORD: "pw-0123456789",
      },
    })));
  });

  it("leaves the broker and the token to the config when there is no embedded broker or admin token", () => {
    const [plan] = planWorkers(parseConfig({ dataDir: "/d" }), 1, { basePort: 9000, adminTokenFile: undefined });
    expect(plan.env).toEqual({ PORT: "9000", DATA_DIR: "/d/worker-0", MQTT_CLIENT_ID: "sensors-gateway-0", GATEWAY_WORKER: "0" });
  });
});
