import { leaseElection } from "./lease.ts";
import type { ConnState, StreamEvent } from "./types.ts";

/** What tabs say to each other on the BroadcastChannel. */
export type TabMessage =
  | { type: "event"; event: StreamEvent }
  | { type: "state"; state: ConnState }
  /** A new tab asks the leader for the current connection state. */
  | { type: "hello" }
  /** A tab signed out: every tab reloads (and finds itself signed out). */
  | { type: "logout" };

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
  /** Only with the lease (no Web Locks): this tab lost the lease and must close its stream at once. */
  onFollower(): void;
  onMessage(msg: TabMessage): void;
}

/**
 * One stream for all tabs: browsers allow 6 HTTP/1.1 connections per origin, so a tab per EventSource
 * hangs at the 7th. The tab holding a Web Lock is the leader and owns the only EventSource; the lock is
 * released when that tab closes or crashes, and the next waiting tab becomes leader. Without Web Locks
 * (not a secure context) an IndexedDB lease elects the leader instead (lease.ts).
 *
 * @example joinTabGroup({ name: "#", onLeader: () => openStream(...), onFollower, onMessage: apply });
 */
export function joinTabGroup(opts: TabGroupOptions): TabGroup {
  const channel = new BroadcastChannel(`sensors-dashboard:${opts.name}`);
  channel.onmessage = (e: MessageEvent<TabMessage>) => opts.onMessage(e.data);
  const leave =
    navigator.locks !== undefined ? lockElection(`sensors-stream:${opts.name}`, opts) : leaseElection(opts.name, opts);
  channel.postMessage({ type: "hello" } satisfies TabMessage);
  return {
    post: (msg) => channel.postMessage(msg),
    close() {
      leave();
      channel.close();
    },
  };
}

/** Web Locks: the lock is the leadership. Returns `leave()`, which also withdraws a request still waiting. */
function lockElection(lockName: string, opts: TabGroupOptions): () => void {
  const waiting = new AbortController();
  let release: (() => void) | undefined;
  let left = false;
  navigator.locks
    .request(lockName, { signal: waiting.signal }, () => {
      // Granted while the tab was going away (the old leader closed in the same moment): pass it on.
      if (left) return;
      opts.onLeader();
      return new Promise<void>((resolve) => (release = resolve));
    })
    .catch((err: unknown) => {
      if (!(err instanceof DOMException && err.name === "AbortError")) console.error("leader lock:", err);
    });
  return () => {
    left = true;
    waiting.abort();
    release?.();
  };
}
