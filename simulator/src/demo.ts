/**
 * `npm start`: the gateway (child process, embedded broker) plus SIM_DEVICES simulated devices.
 * Env: PORT (8080), MQTT_PORT (1883), SIM_DEVICES (3), SIM_INTERVAL_S (5), SIM_TIME_SCALE (1), SIM_SEED (1),
 * SIM_FAULTS (fault spec, see --help of `npm run sim`), SIM_FLASH_DIR (default data/sim-flash/seed-<seed>),
 * SIM_PROFILE (runtime profile, esp32 (default) or vm). This is the local demo, zero setup: the gateway runs with
 * HTTP auth explicitly open (AUTH_MODE=open unless set) and the embedded broker open (MQTT_AUTH=open unless set),
 * both bound to loopback (HOST and MQTT_HOST are always 127.0.0.1 here, whatever the shell exports), so nothing
 * on the network can reach them. A gateway for the network is `npm run gateway` (token auth by default).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseFaultSpec } from "./fault-spec.ts";
import { type Fleet, startFleet } from "./fleet.ts";
import { DEFAULT_PROFILE, PROFILE_NAMES, type ProfileName } from "./profile.ts";
import { ErrSimulatorSetup } from "./vm.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const HEALTH_DEADLINE_MS = 60_000;

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`demo: ${name}=${raw} must be an integer ${min}..${max}`);
    process.exit(2);
  }
  return n;
}

async function waitForHealth(url: string, gateway: ChildProcess): Promise<void> {
  const deadline = Date.now() + HEALTH_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (gateway.exitCode !== null || gateway.signalCode !== null) {
      throw new Error(`the gateway exited (${gateway.exitCode ?? gateway.signalCode}) before it was healthy`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer 200 within ${HEALTH_DEADLINE_MS / 1000} s`);
}

async function stopGateway(gateway: ChildProcess): Promise<void> {
  if (gateway.exitCode !== null || gateway.signalCode !== null) return;
  const exited = once(gateway, "exit");
  gateway.kill("SIGTERM");
  const timer = setTimeout(() => gateway.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

async function main(): Promise<void> {
  const port = intEnv("PORT", 8080, 1, 65535);
  const mqttPort = intEnv("MQTT_PORT", 1883, 1, 65535);
  const devices = intEnv("SIM_DEVICES", 3, 0, 1000);
  const intervalS = intEnv("SIM_INTERVAL_S", 5, 5, 86400);
  const seed = intEnv("SIM_SEED", 1, 0, 2 ** 31);
  const timeScale = Number(process.env.SIM_TIME_SCALE ?? 1);
  if (!(timeScale > 0)) {
    console.error(`demo: SIM_TIME_SCALE must be > 0`);
    process.exit(2);
  }
  const faults = process.env.SIM_FAULTS ? parseFaultSpec(process.env.SIM_FAULTS) : undefined;
  const profile = (process.env.SIM_PROFILE || DEFAULT_PROFILE) as ProfileName;
  if (!PROFILE_NAMES.includes(profile)) {
    console.error(`demo: SIM_PROFILE must be one of ${PROFILE_NAMES.join(", ")}, got ${profile}`);
    process.exit(2);
  }

  const gateway = spawn(join(REPO_ROOT, "node_modules/.bin/tsx"), [join(REPO_ROOT, "gateway/src/server.ts")], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      MQTT_PORT: String(mqttPort),
      HOST: "127.0.0.1",
      MQTT_HOST: "127.0.0.1",
      AUTH_MODE: process.env.AUTH_MODE || "open",
      MQTT_AUTH: process.env.MQTT_AUTH || "open",
    },
    stdio: "inherit",
  });
  let fleet: Fleet | undefined;
  let stopping = false;
  const shutdown = async (code: number, why: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`demo: ${why}; stopping`);
    await fleet?.stop();
    await stopGateway(gateway);
    process.exit(code);
  };
  gateway.on("exit", (code, signal) => {
    if (!stopping) void shutdown(1, `the gateway exited unexpectedly (${code ?? signal})`);
  });
  process.on("SIGINT", () => void shutdown(0, "SIGINT"));
  process.on("SIGTERM", () => void shutdown(0, "SIGTERM"));

  try {
    await waitForHealth(`http://127.0.0.1:${port}/healthz`, gateway);
    if (devices > 0) {
      fleet = await startFleet({
        devices,
        brokerUrl: `mqtt://127.0.0.1:${mqttPort}`,
        seed,
        timeScale,
        settings: { INTERVAL_S: intervalS },
        flashDir: process.env.SIM_FLASH_DIR || undefined,
        faults,
        profile,
        echo: true,
      });
    }
  } catch (err) {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
    await shutdown(1, "start failed");
    return;
  }
  console.log(
    `\ndemo: ${devices} simulated device(s) (${fleet?.devices.map((d) => d.id).join(", ") ?? "none"}) publish every ` +
      `~${intervalS / timeScale} s to mqtt://127.0.0.1:${mqttPort} (runtime profile ${profile})\n` +
      `demo: dashboard at http://127.0.0.1:${port}/  (Ctrl-C stops everything)\n`,
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof ErrSimulatorSetup ? `demo: ${err.message}` : err);
  process.exit(1);
});
