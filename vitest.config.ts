import { defineConfig } from "vitest/config";

// Suites start real brokers, gateways and VMs: run files one at a time on this 2-core target.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "gateway/**/*.test.ts", "simulator/**/*.test.ts", "hardware/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ["default"],
  },
});
