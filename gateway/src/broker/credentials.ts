import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

/**
 * Device credentials of the embedded broker: one JSON file under the data dir holding scrypt hashes.
 * The provision tool writes it; the running broker re-reads it when its mtime changes, so a new device
 * can connect without a gateway restart.
 */

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

// scrypt parameters recommended by OWASP (N=2^15, r=8, p=1); ~50 ms on a Raspberry Pi 4, once per device connect.
const SCRYPT = { N: 32768, r: 8, p: 1, keylen: 32 } as const;

export const CREDENTIALS_FILE_NAME = "mqtt-credentials.json";

export function defaultCredentialsFile(dataDir: string): string {
  return join(dataDir, CREDENTIALS_FILE_NAME);
}

export interface CredentialsFile {
  v: 1;
  devices: Record<string, { hash: string; createdAt: string }>;
}

/** `scrypt$N$r$p$<salt b64>$<hash b64>` */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, SCRYPT.keylen, { ...SCRYPT, maxmem: 64 * 1024 * 1024 });
  return ["scrypt", SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString("base64"), hash.toString("base64")].join("$");
}

export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const salt = Buffer.from(parts[4]!, "base64");
  const expected = Buffer.from(parts[5]!, "base64");
  if (!N || !r || !p || expected.length === 0) return false;
  const actual = await scryptAsync(password, salt, expected.length, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  return timingSafeEqual(actual, expected);
}

/** A random password that survives .env files and shell quoting: base64url, 144 bits. */
export function generatePassword(): string {
  return randomBytes(18).toString("base64url");
}

export function readCredentialsFile(file: string): CredentialsFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { v: 1, devices: {} };
    throw err;
  }
  const parsed = JSON.parse(text) as Partial<CredentialsFile>;
  if (parsed.v !== 1 || typeof parsed.devices !== "object" || parsed.devices === null) {
    throw new Error(`${file}: not a credentials file (expected {"v":1,"devices":{...}})`);
  }
  return parsed as CredentialsFile;
}

/** Writes atomically (temp file + rename) with mode 0600: the broker may be reading it right now. */
export function writeCredentialsFile(file: string, content: CredentialsFile): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(content, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, file);
}

/** Adds or replaces one device's password hash. */
export async function setDevicePassword(file: string, deviceId: string, password: string): Promise<void> {
  const hash = await hashPassword(password);
  const content = readCredentialsFile(file);
  content.devices[deviceId] = { hash, createdAt: new Date().toISOString() };
  writeCredentialsFile(file, content);
}

/**
 * Read side used by the broker. Successful checks are remembered per device as (stored hash, SHA-256 of the
 * password) so a device waking every few seconds does not pay scrypt each time; a changed hash invalidates it.
 */
export class DeviceCredentials {
  private mtimeMs = -1;
  private devices: CredentialsFile["devices"] = {};
  private readonly verified = new Map<string, { hash: string; digest: Buffer }>();

  constructor(readonly file: string) {}

  async verify(deviceId: string, password: string): Promise<boolean> {
    const entry = this.current()[deviceId];
    if (entry === undefined || !Object.hasOwn(this.devices, deviceId)) return false; // hasOwn: "__proto__" is no device
    const digest = createHash("sha256").update(password).digest();
    const known = this.verified.get(deviceId);
    if (known !== undefined && known.hash === entry.hash) return timingSafeEqual(known.digest, digest);
    const ok = await verifyPassword(password, entry.hash);
    if (ok) this.verified.set(deviceId, { hash: entry.hash, digest });
    return ok;
  }

  private current(): CredentialsFile["devices"] {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.file).mtimeMs;
    } catch {
      mtimeMs = 0; // no file yet: no devices
    }
    if (mtimeMs !== this.mtimeMs) {
      this.devices = mtimeMs === 0 ? {} : readCredentialsFile(this.file).devices;
      this.mtimeMs = mtimeMs;
    }
    return this.devices;
  }
}
