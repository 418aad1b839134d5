/**
 * Debian's nginx for tests, running the shipped hardware/pi/nginx/sleepy-sensors.conf rendered for the test's
 * gateways (hardware/pi/nginx/render.ts, the generator users run), on a free loopback port, unprivileged
 * (`-p <tmp>`, temp paths, the access log in the temp dir), stopped by pid.
 *
 * @example
 * const hasNginx = nginxAvailable();   // skips visibly, or throws when CI=true
 * const proxy = await startNginx({ gateways: ["127.0.0.1:8080"] });
 * await fetch(`${proxy.url}/healthz`);
 * await proxy.stop();
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NGINX_CONFIG, renderNginxConfig } from "../../hardware/pi/nginx/render.ts";
import { freePort } from "../helpers/ports.ts";
import { waitUntil } from "../helpers/wait.ts";

export const NGINX_BIN = "/usr/sbin/nginx";

/** True when the binary exists; else throws under CI=true, or prints a visible skip message and returns false. */
export function nginxAvailable(bin = NGINX_BIN): boolean {
  if (existsSync(bin)) return true;
  const message = `nginx not found at ${bin} (apt-get install nginx-light)`;
  if (process.env.CI === "true") throw new Error(`${message}: required when CI=true`);
  console.warn(`SKIP: ${message}; nginx tests are skipped`);
  return false;
}

export interface RunningNginx {
  url: string;
  port: number;
  /** The rendered site config nginx runs. */
  config: string;
  /** The site's access log so far. */
  accessLog(): string;
  /** SIGTERM (nginx's fast shutdown) by pid, wait, remove the temp dir. Safe twice. */
  stop(): Promise<void>;
}

export async function startNginx(opts: { gateways: string[] }): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), "nginx-"));
  const port = await freePort();
  const config = renderNginxConfig(readFileSync(NGINX_CONFIG, "utf8"), { gateways: opts.gateways, listen: `127.0.0.1:${port}`, logDir: dir });
  writeFileSync(join(dir, "sleepy-sensors.conf"), config);
  for (const t of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, t));
  // The main file Debian's /etc/nginx/nginx.conf would be, reduced to what an unprivileged test can run.
  writeFileSync(
    join(dir, "nginx.conf"),
    `master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  include ${dir}/sleepy-sensors.conf;
}
`,
  );
  const args = ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")];
  const check = spawnSync(NGINX_BIN, ["-t", ...args], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`nginx -t refused the rendered config:\n${check.stderr}`);
  const child = spawn(NGINX_BIN, [...args, "-g", "daemon off;"], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    })());
  try {
    await waitUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`);
        return (await fetch(`${url}/healthz`)).status === 200;
      },
      { timeoutMs: 10_000, message: "nginx to proxy /healthz" },
    );
  } catch (e) {
    const log = existsSync(join(dir, "error.log")) ? readFileSync(join(dir, "error.log"), "utf8") : "";
    await stop();
    throw new Error(`${(e as Error).message}\n${log}`);
  }
  const accessLogFile = join(dir, "sleepy-sensors.access.log");
  return { url, port, config, accessLog: () => (existsSync(accessLogFile) ? readFileSync(accessLogFile, "utf8") : ""), stop };
}
