#!/usr/bin/env node
// POST /v2/batch round trip: how long a batch of N plain publishes takes to be accepted (all stored).
//
// Serves a snapshot of the sources through scripts/dev.mjs (as `npm run dev` does) on fresh state, starts a
// destination that answers 200, then sends `--batches` batches of `--entries` entries one after another (the
// first two are warm-up), pausing between them so that each batch's deliveries do not overlap the next one.
// Prints the median, min and max round trip and writes bench/results/batch-<date>.json.
//
// Usage: node bench/batch.mjs [--entries 100] [--batches 12] [--pause-ms 1500] [--help]

import path from "node:path";
import { Bench, api, cliOptions, freePort, gitCommit, machineInfo, median, sleep, startDestination } from "./lib.mjs";
import http from "node:http";

const SPEC = {
  options: {
    entries: { value: 100, min: 1, max: 1000, help: "entries per batch" },
    batches: { value: 12, min: 3, max: 200, help: "batches sent, the first two not counted" },
    "pause-ms": { value: 1500, min: 0, max: 60_000, help: "pause after each batch (its deliveries run meanwhile)" },
    "max-minutes": { value: 10, min: 1, max: 60, help: "hard time limit" },
  },
  flags: {
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "batch.mjs");
const bench = new Bench("batch", opts);

async function main() {
  bench.setTimeLimit(opts["max-minutes"]);
  const result = { benchmark: "batch", startedAt: new Date(bench.startedAt).toISOString(), machine: machineInfo(), options: { ...opts }, source: { commit: gitCommit() } };
  await bench.finish(result, async () => {
    const snap = bench.snapshotSources();
    result.source.snapshotFingerprint = snap.fingerprint;
    let arrivals = 0;
    const dest = await startDestination(bench, () => arrivals++);
    const boomerang = await bench.startBoomerang({ appDir: snap.appDir, persistDir: path.join(bench.workDir, "state"), port: await freePort() });
    const agent = new http.Agent({ keepAlive: true });
    bench.onCleanup(async () => agent.destroy());
    const times = [];
    for (let b = 0; b < opts.batches; b++) {
      bench.check();
      const entries = Array.from({ length: opts.entries }, (_, i) => ({ destination: `${dest.base}/batch/${b}/${i}`, body: `entry ${i}` }));
      const t0 = performance.now();
      const out = await api(boomerang.base, agent, "POST", "/v2/batch", { headers: { "content-type": "application/json" }, body: JSON.stringify(entries) });
      const ms = performance.now() - t0;
      const accepted = out.filter((o) => typeof o.messageId === "string").length;
      if (accepted !== opts.entries) throw new Error(`batch ${b}: ${accepted} of ${opts.entries} entries accepted: ${JSON.stringify(out.find((o) => o.error))}`);
      if (b >= 2) times.push(ms);
      bench.log(`batch ${b + 1}/${opts.batches}: ${ms.toFixed(1)} ms${b < 2 ? " (warm-up)" : ""}; ${arrivals} deliveries so far`);
      await sleep(opts["pause-ms"]);
    }
    result.roundTripMs = { median: Number(median(times).toFixed(1)), min: Number(Math.min(...times).toFixed(1)), max: Number(Math.max(...times).toFixed(1)), n: times.length };
    result.deliveries = arrivals;
    console.log(`\nPOST /v2/batch with ${opts.entries} entries: median ${result.roundTripMs.median} ms (min ${result.roundTripMs.min}, max ${result.roundTripMs.max}, n = ${times.length}); ${arrivals} deliveries seen\n`);
  });
}

main();
