import { execFile } from "node:child_process";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ErrSimulatorSetup, PINNED_CLI_VERSION, createVmInstance, loadVm, readFirmware, startFleet } from "../src/index.ts";

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const MISSING = "/nonexistent/dir/bytecode.devs";

describe("pinned VM loader", () => {
  it("loads the VM factory from the pinned CLI bundle and creates independent instances", async () => {
    expect(PINNED_CLI_VERSION).toBe("2.16.4");
    expect(typeof loadVm().factory).toBe("function");
    const a = await createVmInstance();
    const b = await createVmInstance();
    expect(a).not.toBe(b);
    expect(a.HEAPU8.buffer).not.toBe(b.HEAPU8.buffer);
    for (const name of ["devsSetDeviceId", "devsStart", "devsDeploy", "devsStop", "handlePacket"] as const) {
      expect(typeof a[name]).toBe("function");
    }
  });

  it("a missing bytecode gives ErrSimulatorSetup that says what to run", () => {
    let error: unknown;
    try {
      readFirmware(MISSING);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ErrSimulatorSetup);
    expect((error as ErrSimulatorSetup).code).toBe("bytecode_missing");
    expect((error as Error).message).toContain(MISSING);
    expect((error as Error).message).toContain("npm run build:firmware");
  });

  it("startFleet rejects with the same clear error before starting anything", async () => {
    await expect(startFleet({ devices: 1, brokerUrl: "mqtt://127.0.0.1:1", bytecodePath: MISSING })).rejects.toThrow(
      /firmware bytecode not found .*npm run build:firmware/,
    );
  });

  it("the sim CLI exits 2 with that message", async () => {
    const tsx = join(REPO_ROOT, "node_modules/.bin/tsx");
    const run = promisify(execFile)(tsx, [join(REPO_ROOT, "simulator/src/cli.ts"), "--bytecode", MISSING], {
      cwd: REPO_ROOT,
    });
    await expect(run).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("npm run build:firmware") });
  });
});
