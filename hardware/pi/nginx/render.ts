/**
 * The shipped nginx config (sleepy-sensors.conf) for other gateways: the lines between `# BEGIN gateways` and
 * `# END gateways` become one `server` line per gateway; optionally the listen address and the access log's
 * directory change too (tests run it unprivileged). Everything else stays as shipped, so what is tested is
 * what is installed.
 *
 * @example
 * renderNginxConfig(readFileSync(NGINX_CONFIG, "utf8"), { gateways: gatewayAddresses(["127.0.0.1"], 8080, 4) })
 */
import { fileURLToPath } from "node:url";

export const NGINX_CONFIG = fileURLToPath(new URL("./sleepy-sensors.conf", import.meta.url));

const GATEWAYS = /^([ \t]*)# BEGIN gateways[^\n]*\n[\s\S]*?^[ \t]*# END gateways[^\n]*$/m;

export class ErrNginxTemplate extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ErrNginxTemplate";
  }
}

export interface NginxRenderOptions {
  /** host:port of each gateway, e.g. "127.0.0.1:8080". */
  gateways: string[];
  /** Replaces both `listen` lines, e.g. "127.0.0.1:8088" (default: keep port 80 on IPv4 and IPv6). */
  listen?: string;
  /** Directory of the access log (default /var/log/nginx). */
  logDir?: string;
}

/** host:port for `workers` consecutive ports from `basePort` on each host. */
export function gatewayAddresses(hosts: string[], basePort: number, workers: number): string[] {
  return hosts.flatMap((h) => Array.from({ length: workers }, (_, i) => `${h.includes(":") ? `[${h}]` : h}:${basePort + i}`));
}

export function renderNginxConfig(template: string, opts: NginxRenderOptions): string {
  if (opts.gateways.length === 0) throw new ErrNginxTemplate("at least one gateway is needed");
  const m = GATEWAYS.exec(template);
  if (!m) throw new ErrNginxTemplate("the template has no '# BEGIN gateways' … '# END gateways' block");
  const indent = m[1];
  const servers = opts.gateways.map((g) => `${indent}server ${g} max_fails=1 fail_timeout=5s;`);
  let out = template.replace(GATEWAYS, [`${indent}# BEGIN gateways (npm run nginx-config)`, ...servers, `${indent}# END gateways`].join("\n"));
  if (opts.listen !== undefined) {
    out = out.replace(/^([ \t]*)listen 80;\n[ \t]*listen \[::\]:80;$/m, `$1listen ${opts.listen};`);
    if (!out.includes(`listen ${opts.listen};`)) throw new ErrNginxTemplate("the template's 'listen 80;' lines were not found");
  }
  if (opts.logDir !== undefined) out = out.replaceAll("/var/log/nginx/", `${opts.logDir.replace(/\/$/, "")}/`);
  return out;
}
