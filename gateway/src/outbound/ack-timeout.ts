/** A broker acknowledgement that does not come in time (a half-open connection, a broker that stalls). */
export class ErrAckTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no acknowledgement from the broker within ${ms} ms`);
  }
}

/**
 * Waits for a PUBACK (mqtt.js' publishAsync) at most `ms`: mqtt.js keeps a QoS 1 publish queued across a lost
 * connection and would otherwise wait for as long as the broker is away.
 */
export async function ackWithin<T>(acked: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ErrAckTimeout(what, ms)), ms);
  });
  try {
    return await Promise.race([acked, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
