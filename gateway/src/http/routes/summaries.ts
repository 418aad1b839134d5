/** CSV export of readings and buckets, and the rebuild of summaries (docs/protocol.md "Summaries, series and export"). */
import { Hono } from "hono";
import { isDeviceId } from "../../protocol/ids.ts";
import { deviceTopic } from "../../protocol/topics.ts";
import { SERIES_STEPS, type SeriesStep } from "../../summaries/series.ts";
import type { ExportRow } from "../../transport/sqlite/summaries.ts";
import type { Transport } from "../../transport/transport.ts";
import { canRead } from "../auth.ts";
import type { AppEnv } from "../env.ts";
import { ApiError } from "../errors.ts";

export interface SummaryExport {
  exportRows(deviceId: string, step: SeriesStep, from: number, to: number, metric?: string): Iterable<ExportRow>;
  rebuild(): Promise<{ from: number; days: number; buckets: number }>;
}

const ROWS_PER_CHUNK = 1000;
const RAW_HEADER = "time,t,device_id,device_name,seq,metric,value\n";
const BUCKET_HEADER = "time,t,device_id,device_name,step,metric,count,min,max,mean,last\n";

export function summariesRoutes(deps: { transport: Transport; summaries: SummaryExport }): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/export.csv", (c) => {
    const p = c.get("principal");
    const step = c.req.query("step") ?? "raw";
    if (!(SERIES_STEPS as readonly string[]).includes(step)) throw new ApiError(400, "invalid_query", `step must be one of ${SERIES_STEPS.join(", ")}`);
    const from = msParam(c.req.query("from"), 0, "from");
    const to = msParam(c.req.query("to"), Date.now(), "to");
    const metric = c.req.query("metric");
    if (metric !== undefined && !/^[a-z][a-zA-Z0-9_]{0,31}$/.test(metric)) throw new ApiError(400, "invalid_query", "metric must be a reading key");
    const readable = (id: string) => canRead(p, deviceTopic(id, "telemetry"));
    const asked = c.req.queries("device");
    for (const id of asked ?? []) {
      if (!isDeviceId(id)) throw new ApiError(400, "invalid_device_id", "device must be a device id");
      if (!readable(id)) throw new ApiError(403, "forbidden", "the token may not read this device");
    }
    const names = new Map(deps.transport.devices().map((d) => [d.deviceId, d.name ?? ""]));
    const ids = asked ?? [...names.keys()].filter(readable);

    const rows = (function* () {
      for (const id of ids) yield* deps.summaries.exportRows(id, step as SeriesStep, from, to, metric);
    })();
    const encoder = new TextEncoder();
    let header = true;
    const body = new ReadableStream<Uint8Array>({
      cancel() {
        rows.return(undefined);
      },
      // one page of rows per pull: the response streams while the database is read, in bounded memory
      pull(controller) {
        let text = header ? (step === "raw" ? RAW_HEADER : BUCKET_HEADER) : "";
        header = false;
        for (let i = 0; i < ROWS_PER_CHUNK; i++) {
          const next = rows.next();
          if (next.done) {
            if (text) controller.enqueue(encoder.encode(text));
            controller.close();
            return;
          }
          text += csvLine(next.value, names.get(next.value.deviceId) ?? "");
        }
        controller.enqueue(encoder.encode(text));
      },
    });
    const file = `sensors-${ids.length === 1 ? ids[0] : "devices"}-${step}.csv`;
    return new Response(body, {
      headers: { "Content-Type": "text/csv; charset=utf-8", "Content-Disposition": `attachment; filename="${file}"`, "Cache-Control": "no-store" },
    });
  });

  app.post("/summaries/rebuild", async (c) => {
    if (!c.get("principal").write) throw new ApiError(403, "forbidden", "the token may not rebuild summaries");
    return c.json(await deps.summaries.rebuild());
  });

  return app;
}

function msParam(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d{1,15}$/.test(raw)) throw new ApiError(400, "invalid_query", `${name} must be a time in ms`);
  return Number(raw);
}

function csvLine(r: ExportRow, name: string): string {
  const time = new Date(r.t).toISOString();
  const who = `${r.deviceId},${csvText(name)}`;
  if (r.kind === "raw") return `${time},${r.t},${who},${r.seq},${r.metric},${r.value}\n`;
  return `${time},${r.t},${who},${r.step},${r.metric},${r.count},${r.min},${r.max},${r.mean},${r.last}\n`;
}

/** RFC 4180 quoting; a leading = + - @ is defused so a spreadsheet does not run a person's text as a formula. */
function csvText(s: string): string {
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
