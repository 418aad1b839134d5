/**
 * The gateway's one HTTP error type. Routes and middleware throw an ApiError; the app's onError (app.ts)
 * formats every error as docs/protocol.md's `{"error":{"code","message"}}` and counts it by code in
 * gateway_http_errors_total, so a 400 is as visible as a 500.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class ApiError extends HTTPException {
  constructor(
    override readonly status: ContentfulStatusCode,
    /** Machine-readable, from a fixed set (docs/protocol.md "Errors"): also the metric label. */
    readonly code: string,
    message: string,
  ) {
    super(status, { message });
    this.name = "ApiError";
  }
}

/** The JSON body of an error answer. */
export const errorBody = (code: string, message: string) => ({ error: { code, message } });

/**
 * Hono's onError and notFound for the app: every error answer is formatted and counted here, and only
 * unexpected errors are logged (with the request path; a 4xx is the caller's business, not the log's).
 */
export function errorHandlers(count: (code: string) => void, log: { error(obj: object, msg: string): void }) {
  const answer = (c: Context, status: ContentfulStatusCode, code: string, message: string): Response => {
    count(code);
    return c.json(errorBody(code, message), status);
  };
  return {
    onError: (err: Error, c: Context): Response => {
      if (err instanceof ApiError) return answer(c, err.status, err.code, err.message);
      if (err instanceof HTTPException) return answer(c, err.status as ContentfulStatusCode, `http_${err.status}`, err.message);
      // The client went away while its body was being read (Node: "aborted", ECONNRESET): nobody will read an
      // answer, and it is no fault of the gateway's. Counted as its own code, not logged as a failure.
      if (clientAborted(err, c)) return answer(c, 400, "client_aborted", "the client closed the request");
      log.error({ err, path: c.req.path }, "request failed");
      return answer(c, 500, "internal", "internal error");
    },
    notFound: (c: Context): Response => answer(c, 404, "not_found", `no route for ${c.req.method} ${c.req.path}`),
  };
}

function clientAborted(err: Error, c: Context): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return c.req.raw.signal.aborted || code === "ECONNRESET" || code === "ECONNABORTED" || err.message === "aborted";
}
