import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTool } from "../run-tsx.ts";
import { STAGE_ROOT } from "../boards/stage.ts";
import { ErrUsage, parseFlashArgs } from "./flash.ts";

const CLI = "hardware/flash/flash.ts";

function withSettings(text: string, run: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "flash-"));
  const file = join(dir, "device.env");
  writeFileSync(file, text);
  return run(file).finally(() => rmSync(dir, { recursive: true, force: true }));
}

describe("npm run flash: arguments", () => {
  it("parses the options it passes on to devs", () => {
    const o = parseFlashArgs(["--board", "xiao_c3_sht30", "--port", "/dev/ttyACM0", "--baud", "460800", "--dry-run"]);
    expect(o).toMatchObject({ board: "xiao_c3_sht30", port: "/dev/ttyACM0", baud: "460800", dryRun: true, settings: [] });
  });

  it.each([
    [[], /missing --board/],
    [["--board", "xiao_c3_sht30", "--baud", "fast"], /--baud must be a number/],
    [["--board", "xiao_c3_sht30", "--settings", "/nonexistent/device.env"], /file not found: \/nonexistent\/device\.env/],
    [["--board", "xiao_c3_sht30", "--prot", "/dev/ttyUSB0"], /Unknown option '--prot'/],
  ])("refuses %j", (args, message) => {
    expect(() => parseFlashArgs(args)).toThrow(ErrUsage);
    expect(() => parseFlashArgs(args)).toThrow(message);
  });

  it("exits 2 with the list of boards for an unknown board", async () => {
    const r = await runTool(CLI, ["--board", "esp8266"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown board "esp8266"; known boards: .*supermini_c3_shtc3.*xiao_c3_sht30/);
  });
});

describe("npm run flash: settings are checked before the device is touched", () => {
  it("stops on a loopback broker and missing Wi-Fi, naming file and line", async () => {
    await withSettings("MQTT_HOST=localhost\nINTERVAL_S=1\n", async (file) => {
      const r = await runTool(CLI, ["--board", "xiao_c3_sht30", "--settings", file, "--dry-run"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/device\.env:1: MQTT_HOST localhost is the board itself/);
      expect(r.stderr).toMatch(/device\.env:2: INTERVAL_S must be a whole number from 5 to 86400, got 1/);
      expect(r.stderr).toMatch(/WIFI_SSID missing/);
      expect(r.stderr).toMatch(/stopped before touching the device/);
    });
  });

  it("with valid settings builds the board and prints the bundle and flash steps (dry run, no secrets left behind)", async () => {
    const settings = 'MQTT_HOST=192.168.1.20\nMQTT_USER=kitchen\nMQTT_PASS="s3cret-pass"\nDEVICE_ID=kitchen\nWIFI_SSID=home\nWIFI_PWD="correct horse"\n';
    await withSettings(settings, async (file) => {
      const r = await runTool(CLI, ["--board", "s3_devkitc_aht20", "--settings", file, "--port", "/dev/ttyACM0", "--dry-run"], { timeoutMs: 50_000 });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/built ESP32-S3-DevKitC-1 \+ AHT20: bytecode \d+ bytes/);
      expect(r.stdout).toMatch(/devs bundle --board s3_devkitc_aht20 src\/main\.ts/);
      expect(r.stdout).toMatch(/devs flash esp32 --board s3_devkitc_aht20 --file <bundle\.bin> --port \/dev\/ttyACM0/);
      expect(r.stdout).not.toContain("s3cret-pass");
      expect(existsSync(join(STAGE_ROOT, "s3_devkitc_aht20", ".env.local"))).toBe(false);
    });
  }, 60_000);
});

describe("npm run flash --bundle-only (offline, with a blank runtime image)", () => {
  it("writes one image with the board's pins, the program and the settings, readable by its owner only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bundle-"));
    try {
      // devs bundle patches the image at fixed offsets (DCFG at 0x9000, fstor at 0x1c0000 on the ESP32-C3),
      // so an erased (0xFF) image stands in for the downloaded runtime and keeps the test offline.
      const blank = join(dir, "blank-0x0.bin");
      writeFileSync(blank, Buffer.alloc(64 * 1024, 0xff));
      const settings = join(dir, "device.env");
      writeFileSync(settings, 'MQTT_HOST=192.168.7.7\nMQTT_USER=kitchen\nMQTT_PASS="pw-7f3a9"\nDEVICE_ID=kitchen\nWIFI_SSID=homenet42\nWIFI_PWD="correct horse"\n');
      const r = await runTool(CLI, ["--board", "xiao_c3_sht30", "--settings", settings, "--runtime", blank, "--bundle-only"], { timeoutMs: 50_000 });
      expect(r.stderr).not.toMatch(/EADDRINUSE/); // devs bundle starts its devtools server on 8081-8083
      expect(r.code).toBe(0);
      const path = /bundle written: (\S+)/.exec(r.stdout)?.[1];
      expect(path).toBeDefined();
      const image = readFileSync(path!);
      expect(statSync(path!).mode & 0o777).toBe(0o600);
      expect(image.subarray(0x9000, 0x9004).toString("latin1")).toBe("DCFG");
      const dcfg = image.subarray(0x9000, 0xa000);
      expect(dcfg.includes(Buffer.from("Seeed XIAO ESP32C3 + SHT30"))).toBe(true);
      const fstor = image.subarray(0x1c0000);
      for (const text of ["MQTT_HOST", "192.168.7.7", "SENSOR", "sht30", "DEVICE_ID", "kitchen", "pw-7f3a9"]) {
        expect(fstor.includes(Buffer.from(text)), text).toBe(true);
      }
      const bytecode = readFileSync(join(STAGE_ROOT, "xiao_c3_sht30", ".devicescript", "bin", "bytecode.devs"));
      expect(fstor.includes(bytecode.subarray(0, 256))).toBe(true);
      // Wi-Fi is not in the bundle (the VM has no Wi-Fi service): it goes over serial in step 5.
      expect(image.includes(Buffer.from("homenet42"))).toBe(false);
      expect(existsSync(join(STAGE_ROOT, "xiao_c3_sht30", ".env.local"))).toBe(false);
      // The blank test image must never be picked up by a later real flash.
      expect(existsSync(join(STAGE_ROOT, "xiao_c3_sht30", ".devicescript", "cache"))).toBe(false);
      const kept = join(STAGE_ROOT, "..", "runtime", "devicescript-esp32c3-esp32c3_bare-0x0.bin");
      if (existsSync(kept)) expect(readFileSync(kept).equals(readFileSync(blank))).toBe(false);
      rmSync(path!, { force: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
