import { currentToken, tokenForQuery } from "./auth.ts";
import type { AlertData, AlertState, CommandOp, DeviceSummary, SeriesAnswer, SeriesStep } from "./types.ts";

/** A failed API call, with the gateway's stable error code (docs/protocol.md: JSON errors). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** URLs are relative to the page so the dashboard also works behind a reverse proxy under a sub-path. */
export function apiUrl(path: string): URL {
  return new URL(path, document.baseURI);
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const token = currentToken();
  if (token !== null) headers.set("Authorization", `Bearer ${token}`);
  let res: Response;
  try {
    res = await fetch(apiUrl(path), { ...init, headers, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, "network_error", `gateway unreachable: ${String(err)}`);
  }
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, error?.code ?? `http_${res.status}`, error?.message ?? res.statusText);
  }
  return body as T;
}

export async function getDevices(): Promise<DeviceSummary[]> {
  return (await request<{ devices: DeviceSummary[] }>("api/devices")).devices;
}

const dev = (deviceId: string) => `api/devices/${encodeURIComponent(deviceId)}`;

const json = (method: string, body: unknown): RequestInit => ({
  method,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body),
});

/**
 * One metric of one device over [from, to] (ms, reading time): raw readings, or buckets when `step` is
 * "auto" and raw would be too many (the gateway picks; the answer says which).
 */
export async function getSeries(
  deviceId: string,
  metric: string,
  from: number,
  to: number,
  step: "auto" | SeriesStep = "auto",
): Promise<SeriesAnswer> {
  const q = new URLSearchParams({ metric, from: String(Math.max(0, Math.floor(from))), to: String(Math.floor(to)), step });
  return request<SeriesAnswer>(`${dev(deviceId)}/series?${q}`);
}

/** Alerts, newest first: `state` firing (default), resolved or all; one device's with `device`. */
export async function getAlerts(opts: { state?: AlertState | "all"; device?: string; limit?: number } = {}): Promise<AlertData[]> {
  const q = new URLSearchParams({ state: opts.state ?? "firing" });
  if (opts.device !== undefined) q.set("device", opts.device);
  if (opts.limit !== undefined) q.set("limit", String(opts.limit));
  return (await request<{ alerts: AlertData[] }>(`api/alerts?${q}`)).alerts;
}

export async function ackAlert(alertId: number): Promise<AlertData> {
  return (await request<{ alert: AlertData }>(`api/alerts/${alertId}/ack`, { method: "POST" })).alert;
}

/** Sets what a person calls the device and where it is (null or "" clears); answers the device. */
export async function patchDevice(deviceId: string, meta: { name: string | null; location: string | null }): Promise<DeviceSummary> {
  return request<DeviceSummary>(dev(deviceId), json("PATCH", meta));
}

/** The CSV export of one device over [from, to] at `step`: a link (the browser downloads it with the cookie). */
export function exportUrl(deviceId: string, from: number, to: number, step: SeriesStep): string {
  const q = new URLSearchParams({ device: deviceId, from: String(Math.max(0, Math.floor(from))), to: String(Math.floor(to)), step });
  // Only when the browser refused the cookie: a link cannot carry a Bearer header.
  const token = tokenForQuery();
  if (token !== null) q.set("access_token", token);
  return apiUrl(`api/export.csv?${q}`).href;
}

export interface CommandRequest {
  op: CommandOp;
  seconds?: number;
}

export async function postCommand(deviceId: string, cmd: CommandRequest): Promise<{ id: string; state: string }> {
  return request(`${dev(deviceId)}/commands`, json("POST", cmd));
}
