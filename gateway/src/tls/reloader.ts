/**
 * Reloads the certificate and key when their files change (certbot renewals, `npm run certs` re-runs), without a
 * restart: each listener swaps its secure context (tls.Server#setSecureContext), so new handshakes get the new
 * certificate while connections already open keep theirs (devices stay connected).
 *
 * The directories are watched, not the files: renewals replace a file (rename, symlink swap), and a watch on
 * the old inode would never fire again. Events are debounced because cert and key are written one after the
 * other. A pair that does not load (half-written, key not matching) keeps the old one in service: logged as
 * an error and counted, and the next change event tries again.
 */
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "../ops/log.ts";
import { describeCertificate, loadTlsCredentials, type TlsCredentials, type TlsFiles } from "./credentials.ts";

const DEBOUNCE_MS = 300;

export interface CertificateReloaderOptions {
  files: TlsFiles;
  /** The pair in service now (loaded at start). */
  current: TlsCredentials;
  /** Called with each new valid pair; applies it to every listener. */
  apply: (credentials: TlsCredentials, certificate: ReturnType<typeof describeCertificate>) => void;
  /** Each reload attempt's outcome, for the metrics. */
  counted: (result: "ok" | "failed") => void;
  log: Logger;
}

export class CertificateReloader {
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private current: TlsCredentials;

  constructor(private readonly opts: CertificateReloaderOptions) {
    this.current = opts.current;
    const names = new Set([basename(opts.files.cert), basename(opts.files.key)]);
    for (const dir of new Set([dirname(opts.files.cert), dirname(opts.files.key)])) {
      const watcher = watch(dir, (_event, name) => {
        // name is null on some platforms: then any change in the directory counts
        if (name === null || names.has(name.toString())) this.schedule();
      });
      watcher.on("error", (err) => opts.log.error({ err, dir }, "tls: cannot watch the certificate directory; reloads stop"));
      this.watchers.push(watcher);
    }
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(), DEBOUNCE_MS);
  }

  /** Loads the files now; applies them if they changed and are a valid pair. */
  reload(): void {
    let next: TlsCredentials;
    try {
      next = loadTlsCredentials(this.opts.files);
    } catch (err) {
      this.opts.counted("failed");
      this.opts.log.error({ err: (err as Error).message }, "tls: new certificate files not usable; the previous certificate stays in service");
      return;
    }
    if (next.cert.equals(this.current.cert) && next.key.equals(this.current.key)) return; // touched, not changed
    const certificate = describeCertificate(next.cert);
    this.opts.apply(next, certificate);
    this.current = next;
    this.opts.counted("ok");
    if (certificate.expired) this.opts.log.error({ certificate }, "tls: the reloaded certificate has expired; clients will refuse it");
    else this.opts.log.info({ certificate }, "tls: certificate reloaded");
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
  }
}
