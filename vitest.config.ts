// Worker tests: run inside workerd through @cloudflare/vitest-pool-workers, with real local D1, Queues and
// Durable Objects. Destinations are real HTTP servers on 127.0.0.1 started by the global setup.
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { kCurrentWorker } from "miniflare";
import { defineConfig } from "vitest/config";

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    plugins: [
      cloudflareTest({
        main: "./src/index.ts",
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          // A second D1 database: tenants spread over two shards (src/db/shards.ts).
          d1Databases: { DB_SHARD_1: "00000000-0000-0000-0000-000000000001" },
          // The worker's own D1 host entry point, for test/worker/d1-host.test.ts only (as the D1 host it would send
          // every test's D1 calls through it; `npm start --d1-host` serves it from a workerd process of its own).
          serviceBindings: {
            D1_HOST_LOOP: { name: kCurrentWorker, entrypoint: "D1Host" },
          },
          bindings: {
            TEST_MIGRATIONS: migrations,
            DEV_MODE: "true",
            // Attempts run inside the queue handler, as on Cloudflare, so that tests can observe each batch's work
            // when the handler returns; test/worker/detached.test.ts covers the dev-mode default (detached).
            DETACHED_ATTEMPTS: "false",
            // Quotas off, as under `npm run dev`; test/worker/quotas.test.ts turns them on.
            DAILY_MESSAGE_QUOTA: "off",
            BURST_RPS: "off",
            ADMIN_SECRET: "test-admin-secret",
            RELAY_SECRET: "test-relay-secret",
            D1_HOST_SECRET: "test-d1-secret",
            // Short limits keep retries and timeouts quick in tests.
            MAX_TIMEOUT: "10s",
            // Small per-tenant quotas so that the 412 paths can be reached in tests.
            MAX_QUEUES: "20",
            MAX_SCHEDULES: "20",
            // Any value runs the long form of the property-based tests (≥ 10,000 generated cases).
            FUZZ_RUNS: process.env.FUZZ_RUNS ?? "",
          },
        },
      }),
    ],
    test: {
      include: ["test/core/**/*.test.ts", "test/worker/**/*.test.ts"],
      setupFiles: ["./test/apply-migrations.ts"],
      globalSetup: ["./test/support/global-setup.ts"],
      testTimeout: 30_000,
    },
  };
});
