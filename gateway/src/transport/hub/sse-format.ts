/** The SSE wire format (WHATWG HTML §9.2). `data` is one-line JSON, so it never needs splitting. */

const encoder = new TextEncoder();

export function encodeEvent(id: number, event: string, data: string): Uint8Array {
  return encoder.encode(`id: ${id}\nevent: ${event}\ndata: ${data}\n\n`);
}

export const encodeRetry = (ms: number): Uint8Array => encoder.encode(`retry: ${ms}\n\n`);

export const HEARTBEAT = encoder.encode(": hb\n\n");
