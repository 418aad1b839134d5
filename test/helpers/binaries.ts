import { existsSync } from "node:fs";

/**
 * True when a Debian binary the test needs exists. Missing: throws under CI=true (CI runs every suite), else a
 * visible skip message and false (mosquittoAvailable, hasOpenssl in test/tls/pki.ts).
 */
export function binaryAvailable(path: string, aptPackage: string): boolean {
  if (existsSync(path)) return true;
  const message = `${path} not found (apt-get install ${aptPackage})`;
  if (process.env.CI === "true") throw new Error(`${message}: required when CI=true`);
  console.warn(`SKIP: ${message}; tests that need it are skipped`);
  return false;
}
