/** JSON errors in the shape of docs/protocol.md: {"error":{"code","message"}}. */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class ErrHttp extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ErrHttp";
  }
}

export function jsonError(c: Context, status: ContentfulStatusCode, code: string, message: string): Response {
  return c.json({ error: { code, message } }, status);
}
