/** The gateway's HTTP API as the suites use it (docs/protocol.md "REST"); every non-2xx answer throws. */

export interface StoredReading {
  eventId: number;
  seq: number;
  boot: number;
  readings: Record<string, number>;
  receivedAt: number;
}

export interface CommandView {
  id: string;
  deviceId: string;
  op: string;
  state: "queued" | "delivered" | "acked" | "failed";
  error: string | null;
}

const MAX_LIMIT = 1000;

async function json<T>(res: Response, what: string): Promise<T> {
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Every reading the gateway stored for a device, oldest first. The API returns the newest `limit` rows
 * since a time, so a full page means there may be more: the suites stay far below 1000 per device and
 * fail loudly instead of silently truncating.
 */
export async function allReadings(gatewayUrl: string, deviceId: string): Promise<StoredReading[]> {
  const url = `${gatewayUrl}/api/devices/${encodeURIComponent(deviceId)}/readings?since=0&limit=${MAX_LIMIT}`;
  const { readings } = await json<{ readings: StoredReading[] }>(await fetch(url), `readings of ${deviceId}`);
  if (readings.length >= MAX_LIMIT) throw new Error(`${deviceId}: ${readings.length} readings, more than one page`);
  return readings;
}

/** POST /api/devices/:id/commands → the command id (state queued). */
export async function sendCommand(gatewayUrl: string, deviceId: string, body: object): Promise<string> {
  const res = await fetch(`${gatewayUrl}/api/devices/${encodeURIComponent(deviceId)}/commands`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 202) throw new Error(`command to ${deviceId}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()).id as string;
}

export async function getCommand(gatewayUrl: string, deviceId: string, commandId: string): Promise<CommandView> {
  const url = `${gatewayUrl}/api/devices/${encodeURIComponent(deviceId)}/commands/${commandId}`;
  return json<CommandView>(await fetch(url), `command ${commandId}`);
}

/** One unlabelled sample of the gateway's Prometheus text (0 when the metric has no sample yet). */
export async function metricValue(gatewayUrl: string, name: string): Promise<number> {
  const res = await fetch(`${gatewayUrl}/metrics`);
  if (!res.ok) throw new Error(`/metrics: HTTP ${res.status}`);
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}
