/**
 * Finds and reads the settings files of a build, lowest priority first:
 * devs/.env.defaults (git) → devs/boards/<board>.env (git) → devs/.env.local (ignored, secrets)
 * → extra files given on the command line (e.g. the output of `npm run provision`).
 */
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseDeviceScriptEnv } from "./dotenv.ts";
import type { SettingsLayer } from "./validate.ts";

export interface SettingsFiles {
  /** The DeviceScript project folder (…/devs). */
  devsDir: string;
  /** Board id: adds devs/boards/<board>.env. */
  board?: string;
  /** Include devs/.env.local (default true). CI board builds leave it out to stay reproducible. */
  includeLocal?: boolean;
  /** Extra files, highest priority last. They must exist. */
  extraFiles?: string[];
}

/** Reads the layers that exist; a missing extra file is an error (a typo must not pass silently). */
export function loadSettingsLayers(files: SettingsFiles): SettingsLayer[] {
  const repoRoot = join(files.devsDir, "..");
  const wanted: { path: string; committed: boolean; required: boolean }[] = [
    { path: join(files.devsDir, ".env.defaults"), committed: true, required: false },
  ];
  if (files.board) wanted.push({ path: join(files.devsDir, "boards", `${files.board}.env`), committed: true, required: true });
  if (files.includeLocal ?? true) wanted.push({ path: join(files.devsDir, ".env.local"), committed: false, required: false });
  for (const extra of files.extraFiles ?? []) wanted.push({ path: extra, committed: false, required: true });

  const layers: SettingsLayer[] = [];
  for (const file of wanted) {
    const source = relative(repoRoot, file.path) || file.path;
    if (!existsSync(file.path)) {
      if (file.required) {
        layers.push({ source, committed: file.committed, entries: [], issues: [{ severity: "error", source, message: "settings file not found" }] });
      }
      continue;
    }
    const parsed = parseDeviceScriptEnv(readFileSync(file.path, "utf8"), source);
    layers.push({ source, committed: file.committed, entries: parsed.entries, issues: parsed.issues });
  }
  return layers;
}
