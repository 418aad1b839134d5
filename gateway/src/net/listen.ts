/** The one way our servers start listening (HTTP, HTTPS, the redirect port, every broker listener). */
import type { Server } from "node:net";

/**
 * Listens on host:port; rejects with the listen error (EADDRINUSE, EACCES). Once listening, later server errors
 * (EMFILE on accept) go to `onError`, which logs them: an unhandled 'error' would end the process.
 */
export function listen<S extends Server>(server: S, port: number, host: string, onError: (err: Error) => void): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      server.on("error", onError);
      resolve(server);
    });
  });
}

/** Resolves when the server has stopped and its last connection has ended. */
export const closed = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
