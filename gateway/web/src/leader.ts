import type { ConnState, StreamEvent } from "./types.ts";

/** What tabs say to each other on the BroadcastChannel. */
export type TabMessage =
  | { type: "event"; event: StreamEvent }
  | { type: "state"; state: ConnState }
  /** A new tab asks the leader for the current connection state. */
  | { type: "hello" };

export interface TabGroup {
  /** Sends to every other tab of the group (BroadcastChannel never echoes to the sender). */
  post(msg: TabMessage): void;
  close(): void;
}

export interface TabGroupOptions {
  /** Tabs that stream different topic filters form different groups. */
  name: string;
  /** Called when this tab becomes leader: it must open the stream. */
  onLeader(): void;
  /** Only with the lease fallback: another tab took over, this one must close its stream. */
  onFollower(): void;
  onMessage(msg: TabMessage): void;
}

/**
 * One stream for all tabs: browsers allow 6 HTTP/1.1 connections per origin, so a tab per EventSource
 * hangs at the 7th. The tab holding a Web Lock is the leader and owns the only EventSource; the lock is
 * released when that tab closes or crashes, and the next waiting tab becomes leader.
 *
 * @example joinTabGroup({ name: "#", onLeader: () => openStream(...), onFollower, onMessage: apply });
 */
export function joinTabGroup(opts: TabGroupOptions): TabGroup {
  const channel = new BroadcastChannel(`sensors-dashboard:${opts.name}`);
  channel.onmessage = (e: MessageEvent<TabMessage>) => opts.onMessage(e.data);
  let stopElection: () => void;
  // Web Locks exist only in secure contexts (https, localhost): a Pi reached at http://<lan-ip> has none.
  if (navigator.locks !== undefined) {
    let release: (() => void) | undefined;
    void navigator.locks.request(`sensors-stream:${opts.name}`, () => {
      opts.onLeader();
      return new Promise<void>((resolve) => (release = resolve));
    });
    stopElection = () => release?.();
  } else {
    stopElection = leaseElection(`sensors-leader:${opts.name}`, opts);
  }
  channel.postMessage({ type: "hello" } satisfies TabMessage);
  return {
    post: (msg) => channel.postMessage(msg),
    close() {
      stopElection();
      channel.close();
    },
  };
}

const LEASE_MS = 5000;
const RENEW_MS = 1000;
const SETTLE_MS = 250;

/**
 * Fallback election without Web Locks: a lease in localStorage that the leader renews every second.
 * A tab claims an expired lease, then checks after a moment that its write was the last one (two tabs may
 * claim at once). A leader that finds the lease taken (its timers were throttled too long) steps down.
 */
function leaseElection(key: string, opts: TabGroupOptions): () => void {
  const me = crypto.randomUUID();
  let leader = false;
  const read = (): { tab: string; until: number } | null => {
    try {
      return JSON.parse(localStorage.getItem(key) ?? "null") as { tab: string; until: number } | null;
    } catch {
      return null;
    }
  };
  const write = () => localStorage.setItem(key, JSON.stringify({ tab: me, until: Date.now() + LEASE_MS }));
  const tick = () => {
    const lease = read();
    if (lease?.tab === me) {
      write();
      if (!leader) {
        leader = true;
        opts.onLeader();
      }
    } else if (leader && lease !== null && lease.until > Date.now()) {
      leader = false;
      opts.onFollower();
    } else if (!leader && (lease === null || lease.until <= Date.now())) {
      write();
      setTimeout(tick, SETTLE_MS);
    }
  };
  const timer = setInterval(tick, RENEW_MS);
  setTimeout(tick, 0);
  return () => {
    clearInterval(timer);
    if (read()?.tab === me) localStorage.removeItem(key);
  };
}
