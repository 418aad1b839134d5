import { connect, createServer, type Server } from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") return reject(new Error("no port"));
      server.close(() => resolve(address.port));
    });
  });
}

/** The first of `n` consecutive TCP ports on 127.0.0.1 that were all free a moment ago (e.g. `--workers n`). */
export async function freeConsecutivePorts(n: number, attempts = 50): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<Server | undefined>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(undefined));
      server.listen(port, "127.0.0.1", () => resolve(server));
    });
  for (let a = 0; a < attempts; a++) {
    const base = await freePort();
    if (base + n - 1 > 65535) continue;
    const held: Server[] = [];
    for (let i = 0; i < n; i++) {
      const s = await tryListen(base + i);
      if (!s) break;
      held.push(s);
    }
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    if (held.length === n) return base;
  }
  throw new Error(`no ${n} consecutive free ports found in ${attempts} attempts`);
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now (a broker or Redis a test started). */
export function acceptsTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
