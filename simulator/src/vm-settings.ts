/**
 * Writes DeviceScript settings into a VM's own settings service and confirms each one by reading it back,
 * before the program may read them.
 *
 * Why a read-back: frames handed to the VM are not acknowledged, and the program starts on the VM's next
 * process tick after `devsDeploy`. Writing and deploying "at about the same time" let a program that reads its
 * settings at once see some of them missing on its first boot (MQTT_HOST, DEVICE_ID, SENSOR were each lost in
 * some run). So: Set every key, Get it back, resend what did not come back equal, and only then deploy.
 *
 * Jacdac "settings" service (jacdac-c services/settings.c, what `devs deploy` talks to through SettingsClient):
 * command Set 0x81 payload `z b` (key, NUL, value bytes); command Get 0x80 payload `s` (key); the service answers
 * Get with a report 0x80 `z b`. Values are JSON text, which @devicescript/settings `readSetting` parses.
 */
// jacdac-ts's package "exports" has no "types" condition: types from its .d.ts, code from the package.
import type * as JacdacTypes from "../../node_modules/jacdac-ts/dist/types/src/jacdac.js";
import * as jacdacModule from "jacdac-ts";
import type { JacdacFrame } from "./frames.ts";
import { PROFILES } from "./profile.ts";

const { Packet } = jacdacModule as unknown as typeof JacdacTypes;

const SETTINGS_CMD_GET = 0x80;
const SETTINGS_CMD_SET = 0x81;
/**
 * Largest packet payload in a Jacdac frame (jacdac spec, "Frames": 236 bytes of packet data): the most one Set
 * command carries. Reading a setting back allows less (profile.settingsReadLimitBytes, 232): env-settings.ts
 * validateSettings checks that limit before any write.
 */
export const MAX_SETTING_PAYLOAD_BYTES = 236;

/** The esp32 (and vm) profile's settingsReadLimitBytes, when the caller names none. */
const DEFAULT_READ_LIMIT_BYTES = PROFILES.esp32.settingsReadLimitBytes;

/** How long to wait for every read-back before giving up; the VM answers within its same process tick. */
export const SETTINGS_CONFIRM_TIMEOUT_MS = 5000;
/** Keys not confirmed after this long are written (or asked) again. */
const RESEND_AFTER_MS = 250;

/** The VM did not confirm every setting in time: the device is not deployed (its program would misread them). */
export class ErrSettingsNotApplied extends Error {
  override name = "ErrSettingsNotApplied";
  constructor(
    message: string,
    /** The keys that did not read back as written. */
    readonly keys: string[],
  ) {
    super(message);
  }
}

/** The bytes a setting is stored as: its JSON text. */
export function settingBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** Name + NUL + stored value: the size of both the Set packet and the settings service's read reply. */
export function settingRecordBytes(key: string, value: unknown): number {
  return Buffer.byteLength(key) + 1 + settingBytes(value).length;
}

interface Pending {
  expected: Uint8Array;
  /** What the VM last read back for this key (undefined: no answer yet). */
  seen?: Uint8Array;
}

export interface VmSettingsOptions {
  /** The VM's 16-hex-digit Jacdac device id (from its announce). */
  vmDeviceIdHex: string;
  /** Index of the settings service in the VM's announce. */
  serviceIndex: number;
  /** Hands one frame to the VM (never re-entering it: the caller defers to the next turn). */
  toVm: (frame: Uint8Array) => void;
  /** Names the device in error messages. */
  name: string;
  /**
   * Largest name + NUL + value the runtime can read back (profile.settingsReadLimitBytes, default 232): write()
   * refuses bigger settings with a RangeError instead of storing a record that panics the device when read.
   */
  readLimitBytes?: number;
}

/** Talks to one VM instance's settings service. Feed it every frame the VM sends (`fromVm`). */
export class VmSettings {
  private pending = new Map<string, Pending>();
  private onProgress: (() => void) | undefined;
  private closed = false;

  constructor(private readonly options: VmSettingsOptions) {}

  /** A frame the VM sent: picks out the settings service's Get reports. */
  fromVm(frame: JacdacFrame): void {
    if (frame.isCommand || frame.deviceIdHex !== this.options.vmDeviceIdHex || this.pending.size === 0) return;
    for (const p of frame.packets) {
      if (p.serviceIndex !== this.options.serviceIndex || p.serviceCommand !== SETTINGS_CMD_GET) continue;
      const nul = p.payload.indexOf(0);
      if (nul < 0) continue;
      const key = new TextDecoder().decode(p.payload.subarray(0, nul));
      const entry = this.pending.get(key);
      if (!entry) continue;
      entry.seen = p.payload.slice(nul + 1);
      if (Buffer.from(entry.seen).equals(entry.expected)) this.pending.delete(key);
    }
    this.onProgress?.();
  }

  /**
   * Writes every setting and resolves once each one reads back equal; throws ErrSettingsNotApplied on timeout.
   * Only while no program runs: a running program's readSetting would take these reports for its own answers
   * (DeviceScript's actionReport then fails with "fiber not suspended" when one arrives before it waits).
   */
  async write(settings: Record<string, unknown>, timeoutMs = SETTINGS_CONFIRM_TIMEOUT_MS): Promise<void> {
    if (this.pending.size > 0) throw new Error(`${this.options.name}: settings are already being written`);
    const entries = Object.entries(settings);
    const limit = this.options.readLimitBytes ?? DEFAULT_READ_LIMIT_BYTES;
    for (const [key, value] of entries) {
      const size = settingRecordBytes(key, value);
      if (size > limit) {
        throw new RangeError(
          `${this.options.name}: setting ${key} is too long: ${size} bytes (name + NUL + JSON value); the runtime ` +
            `panics reading a setting of more than ${limit} bytes`,
        );
      }
    }
    for (const [key, value] of entries) this.pending.set(key, { expected: settingBytes(value) });
    const deadline = Date.now() + timeoutMs;
    try {
      while (this.pending.size > 0 && !this.closed) {
        const now = Date.now();
        if (now >= deadline) throw this.timeoutError(timeoutMs, entries.length);
        // Set then Get: the VM handles its frames in order, so the answer shows the value just written.
        for (const [key, entry] of this.pending) {
          this.send(SETTINGS_CMD_SET, concat(cString(key), entry.expected));
          this.send(SETTINGS_CMD_GET, new TextEncoder().encode(key));
        }
        await this.progressOrTimeout(Math.min(RESEND_AFTER_MS, deadline - now));
      }
    } finally {
      this.pending.clear();
      this.onProgress = undefined;
    }
  }

  /** The VM is gone (device stopped or power cut): a running write() returns at once, unconfirmed. */
  close(): void {
    this.closed = true;
    this.onProgress?.();
  }

  /** Resolves when nothing is pending any more, or after ms (then the caller resends). */
  private progressOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.onProgress = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.onProgress = () => {
        if (this.pending.size === 0 || this.closed) done();
      };
    });
  }

  private send(command: number, payload: Uint8Array): void {
    const pkt = Packet.from(command, payload);
    pkt.serviceIndex = this.options.serviceIndex;
    pkt.deviceIdentifier = this.options.vmDeviceIdHex;
    pkt.isCommand = true;
    this.options.toVm(pkt.toBuffer());
  }

  private timeoutError(timeoutMs: number, total: number): ErrSettingsNotApplied {
    const silent: string[] = [];
    const empty: string[] = [];
    const different: string[] = [];
    for (const [key, e] of this.pending) {
      if (e.seen === undefined) silent.push(key);
      else if (e.seen.length === 0) empty.push(key);
      else different.push(`${key} (read ${clip(e.seen)}, wrote ${clip(e.expected)})`);
    }
    const parts = [
      silent.length > 0 ? `no answer for ${silent.join(", ")}` : "",
      empty.length > 0 ? `not stored (settings store full? it holds about 8 KB): ${empty.join(", ")}` : "",
      different.length > 0 ? `read back different: ${different.join(", ")}` : "",
    ].filter((p) => p !== "");
    return new ErrSettingsNotApplied(
      `${this.options.name}: the VM did not confirm ${this.pending.size} of ${total} settings within ${timeoutMs} ms; ` +
        `program not deployed. ${parts.join("; ")}`,
      [...this.pending.keys()],
    );
  }
}

function clip(bytes: Uint8Array): string {
  const text = Buffer.from(bytes).toString();
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\u0000`);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
