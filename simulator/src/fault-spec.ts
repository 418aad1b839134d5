/** Parses a fault plan written as `key=value,key=value` (command line, SIM_FAULTS). */
import { type FaultPlan, validateFaultPlan } from "./faults.ts";

const KEYS: readonly (keyof FaultPlan)[] = [
  "cutBeforeConnack",
  "cutMidPublish",
  "cutBeforeAck",
  "powerCut",
  "connectHang",
  "wifiFail",
  "tornWrite",
  "powerCutWindowMs",
  "powerOffMs",
  "seed",
];

export function parseFaultSpec(spec: string): FaultPlan {
  const plan: FaultPlan = {};
  for (const part of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [key, value, extra] = part.split("=");
    if (!KEYS.includes(key as keyof FaultPlan) || value === undefined || extra !== undefined) {
      throw new RangeError(`fault spec: "${part}" is not one of ${KEYS.map((k) => `${k}=<n>`).join(", ")}`);
    }
    const n = Number(value);
    if (!Number.isFinite(n)) throw new RangeError(`fault spec: ${key} needs a number, got "${value}"`);
    plan[key as keyof FaultPlan] = n;
  }
  validateFaultPlan(plan);
  return plan;
}
