#!/usr/bin/env node
// `npm test`: the worker suite (inside workerd), the end-to-end suite (a real `npm run dev` driven by the
// official SDK) and the short crash-recovery run (scripts/chaos.mjs, counted as one test), one after the
// other, then one summary line: "N passed, N failed".
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { OFFLINE_ENV } from "./launcher.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, ".wrangler", "test-results");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const env = { ...process.env, ...OFFLINE_ENV };
const vitest = path.join(root, "node_modules", ".bin", "vitest");
const only = process.argv[2]; // "worker", "e2e" or "chaos" to run one suite

const suites = [
  { name: "worker", args: [] },
  { name: "e2e", args: ["-c", "vitest.e2e.config.ts"] },
  { name: "chaos", script: ["scripts/chaos.mjs", "--messages", "300", "--kills", "2"] },
].filter((s) => !only || s.name === only);

let passed = 0;
let failed = 0;
let skipped = 0;
let exit = 0;
for (const s of suites) {
  console.log(`\n[test] ${s.name} suite`);
  if (s.script) {
    const r = spawnSync(process.execPath, s.script, { cwd: root, env, stdio: "inherit" });
    if (r.status === 0) passed += 1;
    else failed += 1;
    continue;
  }
  const file = path.join(out, `${s.name}.json`);
  const r = spawnSync(vitest, ["run", ...s.args, "--reporter=default", "--reporter=json", `--outputFile.json=${file}`], {
    cwd: root,
    env,
    stdio: "inherit",
  });
  try {
    const report = JSON.parse(readFileSync(file, "utf8"));
    passed += report.numPassedTests;
    failed += report.numFailedTests;
    skipped += report.numPendingTests + (report.numTodoTests ?? 0);
    if (report.numTotalTests === 0) {
      console.error(`[test] the ${s.name} suite ran no test`);
      exit = 1;
    }
  } catch {
    console.error(`[test] the ${s.name} suite left no report (it crashed before finishing)`);
    failed += 1;
  }
  if (r.status !== 0) exit = r.status ?? 1;
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : exit);
