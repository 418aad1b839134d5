/**
 * The pinned loader of the DeviceScript WASM VM.
 *
 * The emscripten VM factory ships only inside the CLI bundle
 * (node_modules/@devicescript/cli/built/devicescript-cli.cjs) as the esbuild module
 * `runtime/devicescript-vm/built/devicescript-vm.js`. We cut that module's text out of the bundle at run time
 * (it is never copied into this repository), evaluate it once with a tiny `__commonJS` shim, compile its wasm
 * once, and then create one cheap instance per simulated device (each has its own memory, socket, flash hooks).
 * Cutting text out of a bundle only works for one exact CLI version: PINNED_CLI_VERSION is checked first.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runInThisContext } from "node:vm";

export const PINNED_CLI_VERSION = "2.16.4";
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** Where `npm run build:firmware` (`cd devs && devicescript build src/main.ts`) writes the program. */
export const DEFAULT_BYTECODE_PATH = join(REPO_ROOT, "devs/.devicescript/bin/bytecode.devs");

const START_MARKER = "// runtime/devicescript-vm/built/devicescript-vm.js\nvar require_devicescript_vm = __commonJS({";
const END_MARKER = "// dap/built/devicescript-dap.cjs";
const WASM_DATA_URI_PREFIX = 'wasmBinaryFile = "data:application/octet-stream;base64,';

/** Setup problems (VM not loadable, firmware not built). `code` is stable; the message says what to run. */
export class ErrSimulatorSetup extends Error {
  constructor(
    readonly code: "cli_missing" | "cli_version" | "vm_markers" | "vm_eval" | "bytecode_missing",
    message: string,
  ) {
    super(message);
    this.name = "ErrSimulatorSetup";
  }
}

/**
 * One VM instance: the subset of the emscripten module (see the extracted source, `Exts`) the simulator uses.
 * Hooks (`flashLoad`, `flashSave`, `sendPacket`, `panicHandler`, `dmesg`, `log`, `error`, `sock*`) are plain
 * properties the wasm glue looks up on every call, so assigning them after creation takes effect.
 */
export interface VmInstance {
  devsSetDeviceId(id: string): void;
  devsStart(): void;
  devsStop(): void;
  devsIsRunning(): boolean;
  /** Returns 0 on success, a negative verification error otherwise. */
  devsDeploy(bytecode: Uint8Array): number;
  devsVerify(bytecode: Uint8Array): number;
  /** Feed one Jacdac frame into the VM (ignored while the VM is stopped). */
  handlePacket(frame: Uint8Array): void;
  sendPacket: (frame: Uint8Array) => void;
  flashSize?: number;
  flashLoad?: () => Uint8Array;
  flashSave?: (image: Uint8Array) => void;
  panicHandler?: (exitCode: number) => void;
  deployHandler?: (exitCode: number) => void;
  dmesg: (line: string) => void;
  log: (...args: unknown[]) => void;
  error: (...args: unknown[]) => void;
  /** Called by the firmware's `connect()`: host is a pointer to a C string; a negative port means TLS. */
  sockOpen: (hostPtr: number, port: number) => number;
  sockWrite: (dataPtr: number, length: number) => number;
  sockClose: () => number;
  sockIsAvailable: () => boolean;
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  _jd_em_tcpsock_on_event(kind: number, ptr: number, length: number): void;
}

/** Events the VM's socket layer understands (jd_em_tcpsock_on_event). */
export const SOCK_EVENT = { open: 1, close: 2, error: 3, message: 4 } as const;

type EmscriptenFactory = (moduleArg: Record<string, unknown>) => Promise<VmInstance>;

interface LoadedVm {
  factory: EmscriptenFactory;
  wasm: WebAssembly.Module;
  cliPath: string;
}

let loaded: LoadedVm | undefined;

function locateCli(): { bundlePath: string; packageJsonPath: string } {
  const require = createRequire(join(REPO_ROOT, "package.json"));
  let packageJsonPath: string;
  try {
    packageJsonPath = require.resolve("@devicescript/cli/package.json");
  } catch {
    throw new ErrSimulatorSetup(
      "cli_missing",
      `@devicescript/cli is not installed (looked from ${REPO_ROOT}). Run \`npm install\` in the repository root.`,
    );
  }
  const version = (JSON.parse(readFileSync(packageJsonPath, "utf8")) as { version?: string }).version;
  if (version !== PINNED_CLI_VERSION) {
    throw new ErrSimulatorSetup(
      "cli_version",
      `@devicescript/cli is ${version ?? "of unknown version"} but the simulator is pinned to exactly ` +
        `${PINNED_CLI_VERSION} (it cuts the VM out of that exact bundle). Run ` +
        `\`npm install --save-exact @devicescript/cli@${PINNED_CLI_VERSION}\`.`,
    );
  }
  const bundlePath = join(dirname(packageJsonPath), "built/devicescript-cli.cjs");
  if (!existsSync(bundlePath)) {
    throw new ErrSimulatorSetup(
      "cli_missing",
      `${bundlePath} is missing: the @devicescript/cli install is incomplete. Run \`npm ci\`.`,
    );
  }
  return { bundlePath, packageJsonPath };
}

function extractVmModuleSource(bundle: string, bundlePath: string): string {
  const start = bundle.indexOf(START_MARKER);
  const end = start < 0 ? -1 : bundle.indexOf(END_MARKER, start);
  if (start < 0 || end < 0) {
    throw new ErrSimulatorSetup(
      "vm_markers",
      `cannot find the DeviceScript VM module in ${bundlePath} (markers "${START_MARKER.split("\n")[1]}" ... ` +
        `"${END_MARKER}"). The bundle does not look like @devicescript/cli ${PINNED_CLI_VERSION}; reinstall it ` +
        `with \`npm install --save-exact @devicescript/cli@${PINNED_CLI_VERSION}\`.`,
    );
  }
  return bundle.slice(start, end);
}

function compileEmbeddedWasm(source: string, bundlePath: string): WebAssembly.Module {
  const at = source.indexOf(WASM_DATA_URI_PREFIX);
  const stop = at < 0 ? -1 : source.indexOf('"', at + WASM_DATA_URI_PREFIX.length);
  if (at < 0 || stop < 0) {
    throw new ErrSimulatorSetup("vm_markers", `no embedded wasm binary found in the VM module of ${bundlePath}`);
  }
  return new WebAssembly.Module(Buffer.from(source.slice(at + WASM_DATA_URI_PREFIX.length, stop), "base64"));
}

/** Loads (once per process) the VM factory from the pinned CLI bundle. Throws ErrSimulatorSetup. */
export function loadVm(): LoadedVm {
  if (loaded) return loaded;
  const { bundlePath } = locateCli();
  const source = extractVmModuleSource(readFileSync(bundlePath, "utf8"), bundlePath);
  const wasm = compileEmbeddedWasm(source, bundlePath);
  // The module body expects CommonJS free variables; esbuild's __commonJS shim calls the body once.
  const wrapper =
    "(function (require, __filename, __dirname) {\n" +
    "var __commonJS = (cb, mod) => () => (mod || cb[Object.keys(cb)[0]]((mod = { exports: {} }).exports, mod), mod.exports);\n" +
    source +
    "\nreturn require_devicescript_vm();\n})";
  let factory: EmscriptenFactory;
  try {
    const body = runInThisContext(wrapper, { filename: `${bundlePath}#devicescript-vm.js` }) as (
      r: NodeJS.Require,
      f: string,
      d: string,
    ) => EmscriptenFactory;
    factory = body(createRequire(bundlePath), bundlePath, dirname(bundlePath));
  } catch (err) {
    throw new ErrSimulatorSetup("vm_eval", `evaluating the DeviceScript VM from ${bundlePath} failed: ${String(err)}`);
  }
  if (typeof factory !== "function") {
    throw new ErrSimulatorSetup("vm_eval", `the VM module in ${bundlePath} did not export a factory function`);
  }
  loaded = { factory, wasm, cliPath: bundlePath };
  return loaded;
}

/**
 * Creates a fresh VM instance (its own wasm memory). The emscripten glue copies its default hooks onto the
 * instance while it initialises, so callers assign their hooks on the returned object, not before.
 * Output the glue prints directly (e.g. "PANIC n") goes to `print`/`printErr` when given.
 */
export async function createVmInstance(
  options: { print?: (line: string) => void; printErr?: (line: string) => void } = {},
): Promise<VmInstance> {
  const { factory, wasm } = loadVm();
  return factory({
    // Reuse the wasm compiled once in loadVm: a new instance per wake stays cheap.
    // Synchronous instantiation of an already compiled module is cheap; a throw here rejects the factory.
    instantiateWasm(imports: WebAssembly.Imports, receive: (instance: WebAssembly.Instance) => unknown) {
      return receive(new WebAssembly.Instance(wasm, imports));
    },
    // The glue's default quit sets process.exitCode: a device must never decide the exit code of the fleet.
    quit: (status: number, toThrow: unknown) => {
      throw toThrow ?? new Error(`DeviceScript VM exited with status ${status}`);
    },
    print: options.print ?? ((line: string) => console.log(line)),
    printErr: options.printErr ?? ((line: string) => console.error(line)),
  });
}

/** Reads a NUL-terminated UTF-8 string from an instance's memory (the glue does not export UTF8ToString). */
export function readCString(instance: VmInstance, ptr: number, maxBytes = 256): string {
  const heap = instance.HEAPU8;
  let end = ptr;
  while (end < ptr + maxBytes && heap[end] !== 0) end++;
  return Buffer.from(heap.subarray(ptr, end)).toString("utf8");
}

export interface Firmware {
  path: string;
  bytes: Uint8Array;
  /** Hex SHA-256 of the file: tests compare it with what each device deployed. */
  sha256: string;
}

/** Reads the compiled firmware. Throws ErrSimulatorSetup("bytecode_missing") telling what to run. */
export function readFirmware(path: string = DEFAULT_BYTECODE_PATH): Firmware {
  if (!existsSync(path)) {
    throw new ErrSimulatorSetup(
      "bytecode_missing",
      `firmware bytecode not found at ${path}. Build it first with \`npm run build:firmware\` ` +
        `(runs \`devicescript build src/main.ts\` in devs/).`,
    );
  }
  const bytes = new Uint8Array(readFileSync(path));
  return { path, bytes, sha256: sha256Hex(bytes) };
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
