import { env } from "cloudflare:test";
import { it } from "vitest";
it("probe", () => {
  console.log("META", JSON.stringify(import.meta.env?.FUZZ_RUNS), typeof import.meta.env, Object.keys(import.meta.env ?? {}).slice(0, 20));
  console.log("ENV", (env as unknown as Record<string, unknown>).FUZZ_RUNS);
});
