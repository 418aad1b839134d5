// Leader election for pages without Web Locks (plain http on a LAN address is not a secure context).

export interface LeaseCallbacks {
  /** This tab holds the lease: it must open the stream. */
  onLeader(): void;
  /** This tab lost the lease: it must close its stream now. */
  onFollower(): void;
}

interface Lease {
  tab: string;
  /** Date.now() after which another tab may take the lease. */
  until: number;
}

const DB_NAME = "sensors-dashboard";
const STORE = "leader-leases";
const LEASE_MS = 5000;
/**
 * Chrome wakes timers of a tab hidden for 5 minutes once a minute: a hidden leader takes a lease that
 * outlasts that, or its lease would lapse between renewals and the tabs would take turns streaming.
 * (A hidden leader that closes still hands over at once; one that crashes is replaced after this.)
 */
const HIDDEN_LEASE_MS = 90_000;
const RENEW_MS = 1000;
/** A leader whose renewals stall steps down this long before its lease can be taken. */
const FENCE_MS = 1500;

/**
 * A lease record in IndexedDB, taken and renewed in readwrite transactions. The browser runs overlapping
 * readwrite transactions of an origin one at a time, across tabs, so "read the lease, write it if free" is
 * atomic: two tabs can never both win. (localStorage cannot do this: each tab reads its own cached copy,
 * and under load a rival's write arrives late, so two tabs could both believe they had won.)
 *
 * The leader renews every second. Without a renewal it closes its stream before the lease runs out, so the
 * next leader never overlaps it; a tab that leaves announces it on a BroadcastChannel so a follower takes
 * over at once instead of waiting for the lease to expire. Returns `leave()` for when the tab goes away
 * (its stream already closed).
 *
 * @example const leave = leaseElection("#", { onLeader: open, onFollower: close });
 */
export function leaseElection(name: string, cb: LeaseCallbacks): () => void {
  const me = randomId();
  const channel = new BroadcastChannel(`sensors-lease:${name}`);
  let db: IDBDatabase | undefined;
  let leader = false;
  let left = false;
  let busy = false;
  /** A tick was asked for while one was running (e.g. the leader just left): run it right after. */
  let again = false;
  let fence: ReturnType<typeof setTimeout> | undefined;
  /** A tab that announced it left: its lease may be taken before it expires. */
  let gone: string | undefined;

  const stepDown = () => {
    clearTimeout(fence);
    if (!leader) return;
    leader = false;
    cb.onFollower();
  };

  const tick = async () => {
    if (left || db === undefined) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const leaseMs = document.visibilityState === "hidden" ? HIDDEN_LEASE_MS : LEASE_MS;
      const won = await claim(db, name, me, gone, leaseMs);
      if (left) return;
      if (!won) return stepDown();
      clearTimeout(fence);
      fence = setTimeout(stepDown, leaseMs - FENCE_MS);
      if (!leader) {
        leader = true;
        cb.onLeader();
      }
    } catch (err) {
      console.error("leader lease:", err);
      stepDown();
    } finally {
      busy = false;
      if (again) {
        again = false;
        void tick();
      }
    }
  };

  const timer = setInterval(() => void tick(), RENEW_MS);
  channel.onmessage = (e: MessageEvent<{ left?: string }>) => {
    if (typeof e.data?.left !== "string") return;
    gone = e.data.left;
    void tick();
  };
  openDb().then(
    (opened) => {
      db = opened;
      if (left) return db.close();
      void tick();
    },
    (err) => {
      // No IndexedDB (some private modes): this tab streams on its own rather than not at all.
      console.warn("no IndexedDB for the leader lease, this tab streams on its own:", err);
      clearInterval(timer);
      if (!left) {
        leader = true;
        cb.onLeader();
      }
    },
  );

  return () => {
    if (left) return;
    left = true;
    clearInterval(timer);
    clearTimeout(fence);
    // Also when not leader: a claim may have been committing while the tab left.
    channel.postMessage({ left: me });
    if (db !== undefined) void release(db, name, me).catch(() => undefined);
    channel.close();
  };
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => {
      const db = req.result;
      // A later page version may upgrade the schema: let it.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(req.error);
  });
}

/** Takes or renews the lease in one transaction; resolves whether this tab holds it afterwards. */
function claim(db: IDBDatabase, key: string, me: string, gone: string | undefined, leaseMs: number): Promise<boolean> {
  return transact(db, (store, done) => {
    const get = store.get(key);
    get.onsuccess = () => {
      const lease = get.result as Lease | undefined;
      const now = Date.now();
      const free = lease === undefined || lease.tab === me || lease.tab === gone || lease.until <= now;
      if (free) store.put({ tab: me, until: now + leaseMs } satisfies Lease, key);
      done(free);
    };
  });
}

/** Gives the lease up if this tab still holds it (best effort: the page may be unloading). */
function release(db: IDBDatabase, key: string, me: string): Promise<boolean> {
  return transact(db, (store, done) => {
    const get = store.get(key);
    get.onsuccess = () => {
      const mine = (get.result as Lease | undefined)?.tab === me;
      if (mine) store.delete(key);
      done(mine);
    };
  });
}

function transact<T>(db: IDBDatabase, body: (store: IDBObjectStore, done: (v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    // Relaxed: a lease is worthless after a crash anyway, no need to wait for the disk.
    const tx = db.transaction(STORE, "readwrite", { durability: "relaxed" });
    let value: T;
    body(tx.objectStore(STORE), (v) => (value = v));
    // Only a committed write counts as won.
    tx.oncomplete = () => resolve(value);
    tx.onabort = () => reject(tx.error ?? new Error("lease transaction aborted"));
  });
}

/** crypto.randomUUID() exists only in secure contexts, which is exactly where this code does not run. */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
