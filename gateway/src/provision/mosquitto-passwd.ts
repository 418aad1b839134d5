import { pbkdf2Sync, randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

/**
 * Mosquitto password-file entries, written without `mosquitto_passwd` (not installed on every gateway).
 * Format of Mosquitto 2.0 (src/password_mosq.c): `user:$7$<iterations>$<base64 salt>$<base64 hash>`,
 * hash = PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes), 12-byte salt. 101 iterations is
 * mosquitto_passwd's own default; our passwords are random 144-bit strings, so slow hashing adds little and
 * would block Mosquitto's single thread on every device connect.
 */
export const MOSQUITTO_PBKDF2_ITERATIONS = 101;

export function mosquittoPasswordHash(password: string, iterations = MOSQUITTO_PBKDF2_ITERATIONS): string {
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(password, salt, iterations, 64, "sha512");
  return `$7$${iterations}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/**
 * Adds or replaces `username` in a Mosquitto password file, keeping every other line. A new file is created
 * with mode 0600 (then `chown mosquitto:` it on the Pi); an existing file keeps its owner and mode.
 * Mosquitto reads the file at start and on SIGHUP (`systemctl reload mosquitto`).
 */
export function setMosquittoPassword(file: string, username: string, password: string): void {
  if (username.includes(":") || /\s/.test(username)) throw new Error(`username ${JSON.stringify(username)} cannot go into a password file`);
  const lines = existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((line) => line !== "") : [];
  const entry = `${username}:${mosquittoPasswordHash(password)}`;
  const index = lines.findIndex((line) => line.slice(0, line.indexOf(":")) === username);
  if (index === -1) lines.push(entry);
  else lines[index] = entry;
  writeFileSync(file, lines.join("\n") + "\n", { mode: 0o600 });
}
