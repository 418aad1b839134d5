/**
 * Reloads the certificate and key when their files change (certbot renewals, `npm run certs` re-runs), without a
 * restart: each listener swaps its secure context (tls.Server#setSecureContext), so new handshakes get the new
 * certificate while connections already open keep theirs (devices stay connected).
 *
 * The directories are watched, not the files: renewals replace a file (rename, symlink swap), and a watch on
 * the old inode would never fire again. A renewal writes key and certificate one after the other, sometimes
 * seconds apart (a certbot deploy hook copying two files): a pair that does not load yet is "in progress" and
 * tried again until SETTLE_MS after the last change; only then is it logged as an error and counted failed, and
 * the previous certificate stays in service. A certificate outside its validity period is not applied either
 * (unless the one in service has expired too). A slow periodic check covers what watching cannot: a watch that
 * could not start (ENOSPC, EACCES) or a directory replaced as a whole (rm -rf tls && npm run certs).
 */
import { statSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "../ops/log.ts";
import { describeCertificate, loadTlsCredentials, type TlsCredentials, type TlsFiles } from "./credentials.ts";

/** Change events come in bursts (write, rename, chmod): act once the burst is over. */
const DEBOUNCE_MS = 300;
/** How long after the last change a pair may stay unusable before that counts as a failed reload. */
const SETTLE_MS = 3_000;
const RETRY_MS = 250;
/** The periodic check: reads the two files and compares; re-watches a directory that was replaced. */
export const RECHECK_MS = 60_000;

export type ReloadResult = "ok" | "failed" | "watch_failed";

export interface CertificateReloaderOptions {
  files: TlsFiles;
  /** The pair in service now (loaded at start). */
  current: TlsCredentials;
  /** Called with each new valid pair; applies it to every listener. */
  apply: (credentials: TlsCredentials, certificate: ReturnType<typeof describeCertificate>) => void;
  /** Each outcome, for the metrics: a reload applied or refused, or a directory that cannot be watched. */
  counted: (result: ReloadResult) => void;
  log: Logger;
  /** The periodic check's interval; default RECHECK_MS. */
  recheckMs?: number;
}

export class CertificateReloader {
  private readonly watchers = new Map<string, { watcher: FSWatcher | undefined; ino: number | undefined }>();
  private readonly names: Set<string>;
  private timer: NodeJS.Timeout | undefined;
  private readonly recheck: NodeJS.Timeout;
  private current: TlsCredentials;
  /** When the files last changed (a change event); retries stop SETTLE_MS after it. */
  private changedAt = 0;
  /** The files' stat at the last attempt: the periodic check tries again only when it differs. */
  private lastTried: string;

  constructor(private readonly opts: CertificateReloaderOptions) {
    this.current = opts.current;
    this.names = new Set([basename(opts.files.cert), basename(opts.files.key)]);
    this.lastTried = this.filesStat();
    for (const dir of new Set([dirname(opts.files.cert), dirname(opts.files.key)])) this.watchDir(dir);
    this.recheck = setInterval(() => this.periodicCheck(), opts.recheckMs ?? RECHECK_MS);
    this.recheck.unref();
  }

  private watchDir(dir: string): void {
    const before = this.watchers.get(dir);
    before?.watcher?.close();
    const ino = inodeOf(dir);
    try {
      const watcher = watch(dir, (_event, name) => {
        // name is null on some platforms: then any change in the directory counts
        if (name === null || this.names.has(name.toString())) this.changed();
      });
      watcher.on("error", (err) => this.watchFailed(dir, err));
      this.watchers.set(dir, { watcher, ino });
    } catch (err) {
      if (before?.watcher !== undefined || before === undefined) this.watchFailed(dir, err as Error); // once, not every check
      this.watchers.set(dir, { watcher: undefined, ino });
    }
  }

  private watchFailed(dir: string, err: Error): void {
    this.opts.counted("watch_failed");
    this.opts.log.error({ err: err.message, dir }, `tls: cannot watch the certificate directory; changes are picked up by the check every ${(this.opts.recheckMs ?? RECHECK_MS) / 1000} s`);
  }

  private periodicCheck(): void {
    for (const [dir, { watcher, ino }] of this.watchers) {
      if (watcher === undefined || inodeOf(dir) !== ino) this.watchDir(dir); // failed before, or replaced
    }
    const stat = this.filesStat();
    if (stat === this.lastTried) return; // unchanged: a broken pair is not reported again every minute
    this.lastTried = stat; // not again on the next check: that would restart the debounce forever
    this.changed();
  }

  /** Inode, size and mtime of both files: changes when either is rewritten or replaced. */
  private filesStat(): string {
    return [this.opts.files.cert, this.opts.files.key]
      .map((f) => {
        try {
          const s = statSync(f);
          return `${s.ino}:${s.size}:${s.mtimeMs}`;
        } catch {
          return "missing";
        }
      })
      .join(" ");
  }

  private changed(): void {
    this.changedAt = Date.now();
    this.schedule(DEBOUNCE_MS);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(), ms);
  }

  /** Loads the files now; applies them if they changed and are a valid pair, else retries or gives up. */
  reload(): void {
    this.lastTried = this.filesStat();
    let next: TlsCredentials;
    try {
      next = loadTlsCredentials(this.opts.files);
    } catch (err) {
      if (Date.now() - this.changedAt < SETTLE_MS) return this.schedule(RETRY_MS); // the other file may be on its way
      this.opts.counted("failed");
      this.opts.log.error({ err: (err as Error).message }, "tls: new certificate files not usable; the previous certificate stays in service");
      return;
    }
    if (next.cert.equals(this.current.cert) && next.key.equals(this.current.key)) return; // touched, not changed
    const certificate = describeCertificate(next.cert);
    if (!certificate.valid && describeCertificate(this.current.cert).valid) {
      this.opts.counted("failed");
      this.opts.log.error({ certificate }, "tls: the new certificate is outside its validity period (expired or not yet valid); the previous certificate stays in service");
      return;
    }
    this.opts.apply(next, certificate);
    this.current = next;
    this.opts.counted("ok");
    if (!certificate.valid) this.opts.log.error({ certificate }, "tls: the reloaded certificate is outside its validity period; clients will refuse it");
    else this.opts.log.info({ certificate }, "tls: certificate reloaded");
  }

  close(): void {
    clearTimeout(this.timer);
    clearInterval(this.recheck);
    for (const { watcher } of this.watchers.values()) watcher?.close();
  }
}

function inodeOf(dir: string): number | undefined {
  try {
    return statSync(dir).ino;
  } catch {
    return undefined;
  }
}
