/**
 * A build folder per board, so board builds never overwrite devs/.devicescript/bin/bytecode.devs
 * (the simulator's firmware). The DeviceScript CLI reads .env files, devsconfig.json and boards/
 * from its working folder and always writes .devicescript/bin/ there, so each board gets a folder
 * devs/.devicescript/boards/<id>/ that links to the shared sources and holds that board's merged settings.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEVS_DIR } from "./catalog.ts";
import { formatDeviceScriptEnv, type SettingValue } from "../settings/dotenv.ts";
import { SECRET_KEYS } from "../settings/validate.ts";

export const STAGE_ROOT = join(DEVS_DIR, ".devicescript", "boards");

export interface Stage {
  dir: string;
  bytecode: string;
  /** Written only when secrets were staged (flash); remove it with clearStagedSecrets. */
  secretsFile: string;
}

/**
 * Creates or refreshes the board's build folder. Secrets go to a separate .env.local (mode 0600)
 * only when `withSecrets` is set, i.e. for flashing.
 * @example
 * const stage = prepareStage("xiao_c3_sht30", validated.settings, { withSecrets: false })
 */
export function prepareStage(boardId: string, settings: Record<string, SettingValue>, opts: { withSecrets: boolean }): Stage {
  const dir = join(STAGE_ROOT, boardId);
  mkdirSync(dir, { recursive: true });
  for (const shared of ["src", "node_modules", "boards"]) {
    const link = join(dir, shared);
    if (!isSymlink(link)) {
      rmSync(link, { recursive: true, force: true });
      symlinkSync(join("..", "..", "..", shared), link);
    }
  }
  copyFileSync(join(DEVS_DIR, "devsconfig.json"), join(dir, "devsconfig.json"));

  const plain: Record<string, SettingValue> = {};
  const secret: Record<string, SettingValue> = {};
  for (const [key, value] of Object.entries(settings)) (SECRET_KEYS.includes(key) ? secret : plain)[key] = value;
  writeFileSync(join(dir, ".env.defaults"), formatDeviceScriptEnv(plain, `Generated for board ${boardId} by hardware/boards/stage.ts: edit devs/.env.defaults or devs/boards/${boardId}.env instead.`));
  const secretsFile = join(dir, ".env.local");
  rmSync(secretsFile, { force: true });
  if (opts.withSecrets && Object.keys(secret).length > 0) {
    writeFileSync(secretsFile, formatDeviceScriptEnv(secret, "Secrets staged for flashing; removed after the bundle is written."), { mode: 0o600 });
  }
  return { dir, bytecode: join(dir, ".devicescript", "bin", "bytecode.devs"), secretsFile };
}

export function clearStagedSecrets(stage: Stage): void {
  rmSync(stage.secretsFile, { force: true });
}

function isSymlink(path: string): boolean {
  return existsSync(path) && lstatSync(path).isSymbolicLink();
}
