/**
 * Issue 12: `server.js --workers N` (the compiled entry, as `npm run gateway -- --workers N` runs it): N gateways
 * on consecutive ports with their own data dirs and MQTT client ids, one admin token, the embedded broker run
 * once by the supervisor, the supervisor's shared port (PORT) balanced over the workers (its connections handed
 * over IPC), a crashed worker restarted while the shared port keeps serving, SIGTERM passed on; bad arguments
 * and a missing Redis URL exit 2.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { get, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeConsecutivePorts, freePort } from "../helpers/ports.ts";
import { waitUntil } from "../helpers/wait.ts";
import { buildGateway, COMPILED_SERVER, productionNodeFlags } from "./compiled-gateway.ts";

const REDIS_BIN = "/usr/bin/redis-server";
const hasRedis = existsSync(REDIS_BIN);
if (!hasRedis && process.env.CI === "true") throw new Error(`redis-server not found at ${REDIS_BIN}: required when CI=true`);
if (!hasRedis) console.warn(`SKIP: redis-server not found at ${REDIS_BIN} (apt-get install redis-server); --workers tests are skipped`);

const baseEnv = (dataDir: string): NodeJS.ProcessEnv => ({
  ...process.env,
  HOST: "127.0.0.1",
  MQTT_HOST: "127.0.0.1",
  MQTT_AUTH: "open",
  DATA_DIR: dataDir,
  LOG_LEVEL: "debug", // the broker logs each client connect at debug
  REDIS_URL: "",
});

/** A GET on a connection of its own (fetch would reuse a pooled one, and so always reach the same worker). */
function getOnNewConnection(url: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(url, { agent: false, headers }, resolve).once("error", reject));
}

/** Which worker answered: its X-Gateway-Instance ("host:port"), the body read and dropped. */
async function instanceOf(url: string, headers: Record<string, string> = {}): Promise<{ status: number; instance: string }> {
  const res = await getOnNewConnection(url, headers);
  res.resume();
  return { status: res.statusCode!, instance: String(res.headers["x-gateway-instance"]) };
}

const refusesConnections = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });

function runToExit(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [...productionNodeFlags(), COMPILED_SERVER, ...args], { env, encoding: "utf8", timeout: 30_000 });
}

describe("server.js --workers: refusals", () => {
  let dir: string;
  beforeAll(() => {
    buildGateway();
    dir = mkdtempSync(join(tmpdir(), "workers-bad-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exits 2 without a Redis URL, saying why, and starts nothing", async () => {
    const r = runToExit(["--workers", "2"], { ...baseEnv(dir), PORT: String(await freePort()) });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--workers 2 needs Redis: set REDIS_URL");
    expect(existsSync(join(dir, "worker-0"))).toBe(false);
  });

  it("exits 2 on what N workers behind nginx cannot do: TLS in each worker, ws on the supervisor's broker, a broker port among the workers'", async () => {
    const port = await freePort();
    const cert = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { encoding: "utf8" });
    expect(cert.status, cert.stderr).toBe(0);
    const r = runToExit(["--workers", "3", "--base-port", String(port)], {
      ...baseEnv(dir),
      REDIS_URL: "redis://:pw@127.0.0.1:6379",
      TLS_CERT: join(dir, "cert.pem"),
      TLS_KEY: join(dir, "key.pem"),
      MQTT_WS_PORT: String(await freePort()),
      MQTT_PORT: String(port + 1),
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--workers: terminate TLS in nginx");
    expect(r.stderr).toContain("for MQTT over WebSockets (MQTT_WS_PORT) use Mosquitto");
    expect(r.stderr).toContain(`the broker's port ${port + 1} (MQTT_PORT) is inside the workers' ports ${port}..${port + 2}`);
    expect(existsSync(join(dir, "worker-0"))).toBe(false);
  });

  it("exits 2 when the shared port is one of the workers', or random without --base-port", async () => {
    const port = await freePort();
    const inside = runToExit(["--workers", "2", "--base-port", String(port)], { ...baseEnv(dir), REDIS_URL: "redis://:pw@127.0.0.1:6379", PORT: String(port + 1) });
    expect(inside.status).toBe(2);
    expect(inside.stderr).toContain(`the shared port ${port + 1} (PORT) is inside the workers' ports ${port}..${port + 1}`);
    const random = runToExit(["--workers", "2"], { ...baseEnv(dir), REDIS_URL: "redis://:pw@127.0.0.1:6379", PORT: "0" });
    expect(random.status).toBe(2);
    expect(random.stderr).toContain("--workers with PORT=0 (a random shared port): give the workers' ports with --base-port P");
    expect(existsSync(join(dir, "worker-0"))).toBe(false);
  });

  it.each([
    [["--workers", "0"], '--workers "0": expected an integer 1..64'],
    [["--workers", "two"], '--workers "two": expected an integer 1..64'],
    [["--base-port", "9000"], "--base-port only applies with --workers N"],
    [["--worker", "2"], "Unknown option '--worker'"],
  ])("exits 2 on %j", (args, message) => {
    const r = runToExit(args, { ...baseEnv(dir), REDIS_URL: "redis://:pw@127.0.0.1:6379" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain("usage: server.js");
  });
});

describe.skipIf(!hasRedis)("server.js --workers 2", () => {
  let dataDir: string;
  let redis: ChildProcess;
  let supervisor: ChildProcess;
  let output = "";
  let basePort: number;
  let mqttPort: number;
  let sharedPort: number;
  let token: string;
  let firstAnswer: { status: number; instance: string };
  const logLines = () =>
    output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const started = () => logLines().filter((l) => l.msg === "worker started");
  const healthy = async (port: number) => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    buildGateway();
    dataDir = mkdtempSync(join(tmpdir(), "workers-"));
    // The workers share state through Redis (the Redis transport); the supervisor requires its URL.
    const redisPort = await freePort();
    redis = spawn(REDIS_BIN, ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", "test-pw"], { stdio: "ignore" });
    basePort = await freeConsecutivePorts(2);
    mqttPort = await freePort();
    sharedPort = await freePort();
    supervisor = spawn(process.execPath, [...productionNodeFlags(), COMPILED_SERVER, "--workers", "2", "--base-port", String(basePort)], {
      env: { ...baseEnv(dataDir), PORT: String(sharedPort), MQTT_PORT: String(mqttPort), REDIS_URL: `redis://:test-pw@127.0.0.1:${redisPort}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    supervisor.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    supervisor.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    // The shared port listens before any worker is ready: the first connection waits for one, not reset.
    await waitUntil(() => refusesConnections(sharedPort).then((refused) => !refused), { timeoutMs: 30_000, message: "the shared port listening" });
    firstAnswer = await instanceOf(`http://127.0.0.1:${sharedPort}/healthz`).catch((e: Error) => ({ status: 0, instance: e.message }));
    await waitUntil(async () => (await healthy(basePort)) && (await healthy(basePort + 1)), {
      timeoutMs: 30_000,
      message: `both workers healthy on ${basePort} and ${basePort + 1}`,
    }).catch((e: Error) => {
      throw new Error(`${e.message}; output:\n${output}`);
    });
    token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
  });
  afterAll(async () => {
    if (supervisor && supervisor.exitCode === null) {
      supervisor.kill("SIGKILL");
      await new Promise((r) => supervisor.once("exit", r));
    }
    redis?.kill("SIGTERM");
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("gives each worker its own port, data dir and MQTT client id, and one broker in the supervisor", () => {
    expect(started().map((l) => [l.worker, l.port, l.dataDir])).toEqual([
      [0, basePort, join(dataDir, "worker-0")],
      [1, basePort + 1, join(dataDir, "worker-1")],
    ]);
    for (const i of [0, 1]) expect(existsSync(join(dataDir, `worker-${i}`, "gateway.sqlite"))).toBe(true);
    // Workers are MQTT clients of the supervisor's broker, under their own ids; the broker state is in dataDir.
    expect(existsSync(join(dataDir, "broker.sqlite"))).toBe(true);
    const connected = logLines().filter((l) => l.part === "broker" && typeof l.clientId === "string").map((l) => l.clientId);
    expect(new Set(connected)).toEqual(new Set(["sensors-gateway-0", "sensors-gateway-1"]));
    expect(output).toContain(`MQTT broker: mqtt://127.0.0.1:${mqttPort}`);
  });

  it("serves the shared port from both workers, one connection each in turn, with one login line on the console", async () => {
    const workers = [`${hostname()}:${basePort}`, `${hostname()}:${basePort + 1}`];
    await waitUntil(async () => (await instanceOf(`http://127.0.0.1:${sharedPort}/healthz`)).status === 200, { message: "the shared port answers" });
    // the connection made before any worker was ready got an HTTP answer from one of them
    expect(workers, `first answer: ${JSON.stringify(firstAnswer)}`).toContain(firstAnswer.instance);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await instanceOf(`http://127.0.0.1:${sharedPort}/api/devices`, { Authorization: `Bearer ${token}` }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    // the worker with the fewest connections takes the next: both serve
    expect(new Set(answers.map((a) => a.instance))).toEqual(new Set(workers));
    expect((await instanceOf(`http://127.0.0.1:${sharedPort}/api/devices`)).status).toBe(401);
    // the supervisor prints the shared address and the login URL once; workers print none of their own
    expect(output.match(/^Dashboard: /gm)).toHaveLength(1);
    expect(output).toContain(`Dashboard: http://127.0.0.1:${sharedPort}/`);
    expect(output).toContain(`http://127.0.0.1:${sharedPort}/?token=${token}`);
  });

  it("accepts the supervisor's admin token on every worker", async () => {
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    for (const port of [basePort, basePort + 1]) {
      expect((await fetch(`http://127.0.0.1:${port}/api/devices`)).status).toBe(401);
      const res = await fetch(`http://127.0.0.1:${port}/api/devices`, { headers: { Authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
    }
    for (const i of [0, 1]) expect(existsSync(join(dataDir, `worker-${i}`, "admin-token"))).toBe(false);
  });

  it("restarts a worker that crashed, and logs it; the shared port serves from the other meanwhile and from both after", async () => {
    const victim = started().find((l) => l.worker === 1)!.pid as number;
    // an open stream on the shared port, served by worker 1, ends when it dies
    let stream: IncomingMessage | undefined;
    await waitUntil(async () => {
      const res = await getOnNewConnection(`http://127.0.0.1:${sharedPort}/events`, { Authorization: `Bearer ${token}` });
      if (res.headers["x-gateway-instance"] === `${hostname()}:${basePort + 1}`) return (stream = res);
      res.destroy();
      return false;
    }, { message: "a stream on worker 1" });
    stream!.resume(); // read it, or its end (and close) is never seen
    const streamEnded = new Promise((r) => stream!.once("close", r));
    const supervisorFds = () => readdirSync(`/proc/${supervisor.pid}/fd`).length;
    const fdsBefore = supervisorFds();
    // A burst of connections with the kill in the middle: each gets an answer or is closed, none is left hanging
    // (a connection in the middle of its hand-off to the dying worker is closed by the supervisor).
    let answered = 0;
    const burst = Array.from({ length: 300 }, () =>
      instanceOf(`http://127.0.0.1:${sharedPort}/healthz`).then(
        (a) => {
          if (++answered === 50) process.kill(victim, "SIGKILL");
          return a.status;
        },
        () => "closed" as const,
      ),
    );
    const outcomes = await Promise.all(burst);
    await streamEnded;
    expect(outcomes.filter((o) => o !== 200 && o !== "closed" && o !== 503)).toEqual([]);
    expect(outcomes.filter((o) => o === 200).length).toBeGreaterThan(200);
    // the supervisor holds no descriptor of those connections afterwards
    await waitUntil(() => supervisorFds() <= fdsBefore, { message: `supervisor fds back to ${fdsBefore} (now ${supervisorFds()})` });
    const whileDown = [];
    for (let i = 0; i < 4; i++) whileDown.push(await instanceOf(`http://127.0.0.1:${sharedPort}/healthz`));
    expect(whileDown.map((a) => [a.status, a.instance])).toEqual(Array(4).fill([200, `${hostname()}:${basePort}`]));
    const restart = await waitUntil(() => logLines().find((l) => l.msg === "worker exited unexpectedly: restarting"), {
      message: "the restart log line",
    });
    expect(restart).toMatchObject({ worker: 1, signal: "SIGKILL", restartInMs: 500 });
    await waitUntil(() => started().filter((l) => l.worker === 1).length === 2, { message: "worker 1 started again" });
    const newPid = started().filter((l) => l.worker === 1)[1].pid;
    expect(newPid).not.toBe(victim);
    await waitUntil(() => healthy(basePort + 1), { timeoutMs: 30_000, message: "worker 1 healthy again" });
    await waitUntil(async () => (await instanceOf(`http://127.0.0.1:${sharedPort}/healthz`)).instance === `${hostname()}:${basePort + 1}`, {
      message: "the restarted worker 1 takes shared-port connections again",
    });
  });

  it("passes SIGTERM on, waits for every worker and exits 0", async () => {
    const pids = started().slice(-2).map((l) => l.pid as number);
    const exited = new Promise<number | null>((r) => supervisor.once("exit", (code) => r(code)));
    supervisor.kill("SIGTERM");
    expect(await exited).toBe(0);
    const stopped = logLines().filter((l) => l.msg === "worker stopped");
    expect(stopped.map((l) => l.code).sort()).toEqual([0, 0]);
    for (const pid of [...pids, ...started().map((l) => l.pid as number)]) {
      expect(() => process.kill(pid, 0), `worker ${pid} is gone`).toThrow();
    }
    expect(await refusesConnections(sharedPort)).toBe(true);
  });
});

describe.skipIf(!hasRedis)("server.js --workers 1: Ctrl-C in a terminal, and a supervisor killed with -9", () => {
  let redis: ChildProcess;
  let redisUrl: string;
  const dirs: string[] = [];
  beforeAll(async () => {
    buildGateway();
    const redisPort = await freePort();
    redis = spawn(REDIS_BIN, ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", "test-pw"], { stdio: "ignore" });
    redisUrl = `redis://:test-pw@127.0.0.1:${redisPort}`;
  });
  afterAll(() => {
    redis?.kill("SIGTERM");
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /**
   * A supervisor in its own process group, as a shell starts it; resolves once its worker is healthy (or, with
   * `untilSpawned`, as soon as the supervisor logged the worker's start).
   */
  async function startInOwnGroup({ untilSpawned = false } = {}) {
    const dataDir = mkdtempSync(join(tmpdir(), "workers-signals-"));
    dirs.push(dataDir);
    const port = await freePort();
    const child = spawn(process.execPath, [...productionNodeFlags(), COMPILED_SERVER, "--workers", "1", "--base-port", String(port)], {
      env: { ...baseEnv(dataDir), PORT: String(await freePort()), MQTT_PORT: String(await freePort()), REDIS_URL: redisUrl },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const lines = () =>
      output
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    if (untilSpawned) await waitUntil(() => lines().some((l) => l.msg === "worker started"), { timeoutMs: 30_000, message: "the worker spawned" });
    else {
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, {
        timeoutMs: 30_000,
        message: `the worker on ${port}`,
      });
    }
    const workerPid = lines().find((l) => l.msg === "worker started")!.pid as number;
    return { child, exited, lines, workerPid, output: () => output };
  }

  it("Ctrl-C (SIGINT to the terminal's process group) stops the worker gracefully, once", async () => {
    const sup = await startInOwnGroup();
    process.kill(-sup.child.pid!, "SIGINT");
    expect(await sup.exited).toBe(0);
    // Exit 0: the worker got one SIGINT (from the supervisor); a second one would have made it exit 1 at once.
    expect(sup.lines().find((l) => l.msg === "worker stopped")).toMatchObject({ code: 0 });
    expect(() => process.kill(sup.workerPid, 0)).toThrow();
  });

  it("a worker stops by itself when its supervisor is killed with SIGKILL", async () => {
    const sup = await startInOwnGroup();
    sup.child.kill("SIGKILL");
    await sup.exited;
    await waitUntil(
      () => {
        try {
          process.kill(sup.workerPid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 30_000, message: `worker ${sup.workerPid} to exit after its supervisor died` },
    );
  });

  it("a worker still starting stops by itself when its supervisor is killed with SIGKILL", async () => {
    const sup = await startInOwnGroup({ untilSpawned: true });
    sup.child.kill("SIGKILL"); // the worker is still loading its modules or opening Redis
    await sup.exited;
    await waitUntil(
      () => {
        try {
          process.kill(sup.workerPid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 30_000, message: `worker ${sup.workerPid} to exit after its supervisor died during its start` },
    );
  });
});
