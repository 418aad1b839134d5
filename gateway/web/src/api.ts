import { currentToken } from "./auth.ts";
import type { CommandOp, DeviceSummary, Reading } from "./types.ts";

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

const READINGS_PAGE = 1000;

/** The latest READINGS_PAGE readings taken at or after `from` (ms, reading time `t`), ordered by `t`. */
export async function getReadings(deviceId: string, from: number): Promise<Reading[]> {
  const q = new URLSearchParams({ from: String(Math.max(0, Math.floor(from))), limit: String(READINGS_PAGE) });
  const path = `api/devices/${encodeURIComponent(deviceId)}/readings?${q}`;
  return (await request<{ readings: Reading[] }>(path)).readings;
}

export interface CommandRequest {
  op: CommandOp;
  seconds?: number;
}

export async function postCommand(deviceId: string, cmd: CommandRequest): Promise<{ id: string; state: string }> {
  return request(`api/devices/${encodeURIComponent(deviceId)}/commands`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(cmd),
  });
}
