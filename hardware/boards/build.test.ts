import { describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { runTool } from "../run-tsx.ts";
import { listBoardIds, loadBoard, ErrUnknownBoard, type BoardConfig } from "./catalog.ts";
import { buildBoard, checkBoardConfig } from "./build-board.ts";
import { STAGE_ROOT } from "./stage.ts";
import { DEVS_DIR } from "./catalog.ts";

/** Latest modification time under devs/src: tells whether the firmware source changed during the builds. */
function sourceStamp(): number {
  const dir = join(DEVS_DIR, "src");
  return Math.max(...readdirSync(dir, { recursive: true }).map((f) => statSync(join(dir, String(f))).mtimeMs));
}

describe("board configurations", () => {
  it("include an ESP32-C3 board and an ESP32-S3 or classic ESP32 board, each with I2C pins and a sensor", () => {
    const boards = listBoardIds().map((id) => loadBoard(id));
    expect(boards.some((b) => b.archId === "esp32c3")).toBe(true);
    expect(boards.some((b) => b.archId === "esp32s3" || b.archId === "esp32")).toBe(true);
    for (const b of boards) {
      expect(checkBoardConfig(b), b.id).toEqual([]);
      expect(b.sensor, `${b.id} SENSOR`).toMatch(/^(sht30|shtc3|aht20)$/);
    }
    expect(loadBoard("xiao_c3_sht30").i2c).toEqual({ sdaGpio: 6, sclGpio: 7, kHz: 100 });
  });

  it("rejects I2C wiring that cannot work", () => {
    const base: BoardConfig = { id: "x", devName: "x", archId: "esp32", sensor: "sht30", i2c: { sdaGpio: 21, sclGpio: 22, kHz: 100 }, boardFile: "x", envFile: join(STAGE_ROOT, "..", "..", "boards", "xiao_c3_sht30.env") };
    expect(checkBoardConfig(base)).toEqual([]);
    expect(checkBoardConfig({ ...base, i2c: { sdaGpio: 21, sclGpio: 34, kHz: 100 } }).join()).toMatch(/pinSCL is GPIO 34, an input-only pin/);
    expect(checkBoardConfig({ ...base, i2c: { sdaGpio: 5, sclGpio: 5, kHz: 100 } }).join()).toMatch(/same GPIO 5/);
    expect(checkBoardConfig({ ...base, i2c: undefined }).join()).toMatch(/no "i2c" block/);
    expect(checkBoardConfig({ ...base, i2c: { sdaGpio: 21, sclGpio: 22, kHz: 1000 } }).join()).toMatch(/kHz must be 100 or 400/);
  });

  it("names the known boards when an id is wrong", async () => {
    expect(() => loadBoard("esp8266")).toThrow(ErrUnknownBoard);
    const r = await buildBoard("esp8266");
    expect(r.ok).toBe(false);
    expect(r.problems.join()).toMatch(/unknown board "esp8266"; known boards: .*xiao_c3_sht30/);
  });
});

describe("npm run build:boards", () => {
  it("builds the firmware for every board configuration with the real DeviceScript compiler", async () => {
    const ids = listBoardIds();
    const stampBefore = sourceStamp();
    // --no-simulator: leave devs/.devicescript/bin/bytecode.devs to the simulator suites running alongside.
    const r = await runTool("hardware/boards/build-all.ts", ["--no-simulator"], { timeoutMs: 50_000 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const shas = new Set<string>();
    for (const id of ids) {
      expect(r.stdout).toMatch(new RegExp(`building ${id} \\.\\.\\. ok`));
      const manifest = JSON.parse(readFileSync(join(STAGE_ROOT, id, "build.json"), "utf8"));
      expect(manifest.board).toBe(id);
      expect(manifest.settings.SENSOR).toBe(loadBoard(id).sensor);
      expect(manifest.settings.MQTT_PASS).toBeUndefined();
      expect(existsSync(join(STAGE_ROOT, id, ".devicescript", "bin", "bytecode.devs"))).toBe(true);
      shas.add(manifest.bytecodeSha256);
    }
    // Boards differ in configuration only: one program for all of them (unless someone edited the firmware
    // between two of the builds, which only happens on a shared working copy, never in CI).
    if (sourceStamp() === stampBefore) expect(shas.size).toBe(1);
    else console.warn("devs/src changed during the board builds: bytecode identity across boards not checked");
  }, 60_000);
});
