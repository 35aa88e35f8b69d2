// End-to-end tests: plain Node, talking over real HTTP to a `wrangler dev` server started by each test file
// (see test/e2e/server.ts) and receiving deliveries on real local HTTP servers.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "node",
    include: ["test/e2e/**/*.e2e.test.ts"],
    // Each file starts its own dev server; running them one at a time keeps the two CPU cores free for it.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
