#!/usr/bin/env node
// Two versions of Boomerang side by side, in alternating slices: which one spends less of the machine per message.
//
// Serves both trees with `npm start` (scripts/start.mjs: lean, with the attempt relay), each on fresh state, and one
// local destination. Then, slice after slice, A, B, A, B, …: a closed loop of `--concurrency` publishes for
// `--seconds` against one of them (the other sits idle), until the deliveries of the slice have arrived. Per slice it
// reads the accepted publishes per second and the CPU its server spent (every process of its group, from /proc) per
// message published and delivered. The machine's speed drifts by tens of percent over minutes; slices of both, taken
// in turn, drift together, so the medians and the ratio B ÷ A say what the change did.
//
// Usage: node bench/ab.mjs --b <path of the other tree> [--a <path>] [--a-args "..."] [--b-args "..."] [--slices 6]
//        [--seconds 6] [--body-bytes N] [--help]   (--b-args "--d1-host", with --b the same tree as A, compares a serving option)
// A tree is a checkout of this repository (a `git worktree add` of another commit, say); node_modules are this one's.

import { existsSync } from "node:fs";
import path from "node:path";
import {
  Bench,
  TOKEN,
  cliOptions,
  fmt,
  freePort,
  gitCommit,
  groupCpuSeconds,
  loadLoop,
  machineInfo,
  markdownTable,
  median,
  root,
  sleep,
  startDestination,
} from "./lib.mjs";

const SPEC = {
  options: {
    a: { value: root, text: true, help: "the tree of version A (default: this one)" },
    b: { value: "", text: true, help: "the tree of version B (required)" },
    "a-args": { value: "", text: true, help: "extra arguments for A's scripts/start.mjs, space-separated (e.g. --d1-host)" },
    "b-args": { value: "", text: true, help: "extra arguments for B's scripts/start.mjs, space-separated" },
    slices: { value: 6, min: 1, max: 40, help: "slices of each version, taken in turn" },
    seconds: { value: 6, min: 1, max: 120, help: "length of a slice's load" },
    concurrency: { value: 32, min: 1, max: 256, help: "publishes in flight (closed loop)" },
    "body-bytes": { value: 0, min: 0, max: 262_144, help: "the size of each body: a JSON text of this many bytes (0: the publish's number, a few bytes)" },
    drain: { value: 60, min: 5, max: 600, help: "seconds to wait for a slice's deliveries" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
  },
  flags: { "keep-state": "keep the .wrangler/bench-* work directory afterwards", help: "show this help" },
};

const opts = cliOptions(SPEC, "ab.mjs", (o) => {
  if (!o.b) return "--b is required: the path of the tree to compare with (e.g. `git worktree add /tmp/base HEAD~1`)";
  for (const k of ["a", "b"]) if (!existsSync(path.join(String(o[k]), "src", "index.ts"))) return `--${k} ${o[k]} is not a Boomerang tree (no src/index.ts)`;
  return null;
});
const bench = new Bench("ab", opts);
bench.setTimeLimit(opts["max-minutes"] || Math.ceil((2 * opts.slices * (opts.seconds + 15)) / 60) + 5);

/** Arrivals per slice key. */
const arrivals = new Map();

/** A JSON body of about `bytes` bytes that differs per publish (0: the publish's number). */
function bodyOf(i, bytes) {
  if (!bytes) return String(i);
  const head = `{"n":${i},"pad":"`;
  return `${head}${"x".repeat(Math.max(0, bytes - head.length - 2))}"}`;
}

async function slice(server, destBase, key) {
  const cpu0 = groupCpuSeconds([server.pid]);
  const load = await loadLoop({
    makeRequest: (i) => ({
      url: `${server.base}/v2/publish/${destBase}/${key}`,
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": opts["body-bytes"] ? "application/json" : "text/plain" },
      body: bodyOf(i, opts["body-bytes"]),
    }),
    concurrency: opts.concurrency,
    durationMs: opts.seconds * 1000,
    maxRequests: Number.POSITIVE_INFINITY,
  });
  const accepted = load.ok;
  const drainUntil = Date.now() + opts.drain * 1000;
  while ((arrivals.get(key) ?? 0) < accepted && Date.now() < drainUntil) await sleep(100);
  const delivered = arrivals.get(key) ?? 0;
  const cpu = groupCpuSeconds([server.pid]) - cpu0;
  return { accepted, acceptedPerS: load.rps, delivered, statuses: load.statuses, cpuMsPerMessage: accepted ? (cpu * 1000) / accepted : null };
}

const result = { script: "ab.mjs", commit: gitCommit(), machine: machineInfo(), options: opts, slices: [] };

await bench.finish(
  result,
  async () => {
    const dest = await startDestination(bench, ({ path: p }) => {
      const key = p.slice(1);
      arrivals.set(key, (arrivals.get(key) ?? 0) + 1);
    });
    const servers = {};
    for (const [label, tree] of [["A", opts.a], ["B", opts.b]]) {
      const snap = bench.snapshotSources(path.resolve(String(tree)), `app-${label}`);
      servers[label] = await bench.startBoomerang({
        appDir: snap.appDir,
        persistDir: path.join(bench.workDir, `state-${label}`),
        port: await freePort(),
        lean: true,
        label: `Boomerang ${label}`,
        devArgs: String(opts[`${label.toLowerCase()}-args`]).split(" ").filter(Boolean),
      });
      result[`tree${label}`] = { path: path.resolve(String(tree)), fingerprint: snap.fingerprint, args: opts[`${label.toLowerCase()}-args`] };
    }
    // Warm-up of both (not counted): every path once, the isolate's code optimized.
    for (const label of ["A", "B"]) await slice(servers[label], dest.base, `warm-${label}`);
    for (let n = 1; n <= opts.slices; n++) {
      for (const label of n % 2 ? ["A", "B"] : ["B", "A"]) {
        const s = await slice(servers[label], dest.base, `s${n}-${label}`);
        result.slices.push({ n, label, ...s });
        bench.log(
          `slice ${n}/${opts.slices} ${label}: ${fmt(s.acceptedPerS)} accepted/s, ${s.delivered}/${s.accepted} delivered, ` +
            `${fmt(s.cpuMsPerMessage, 3)} ms of CPU per message ${JSON.stringify(s.statuses)}`,
        );
      }
    }
  },
  () => {
    const r = result;
    if (!r.slices.length) return;
    const of = (label, k) => r.slices.filter((s) => s.label === label).map((s) => s[k]);
    const row = (name, k, digits) => {
      const a = median(of("A", k));
      const b = median(of("B", k));
      return [name, fmt(a, digits), fmt(b, digits), fmt(b / a, 2)];
    };
    const lost = r.slices.reduce((n, s) => n + Math.max(0, s.accepted - s.delivered), 0);
    console.log([
      "",
      `### A/B, ${opts.slices} slice(s) each, medians (${new Date().toISOString().slice(0, 10)}, ${r.commit})`,
      "",
      `A: ${r.treeA?.path} (${r.treeA?.fingerprint}) ${r.treeA?.args ?? ""}; B: ${r.treeB?.path} (${r.treeB?.fingerprint}) ${r.treeB?.args ?? ""}`,
      "",
      markdownTable(["metric", "A", "B", "B ÷ A"], [
        row("accepted publishes/s, closed loop", "acceptedPerS", 0),
        row("server CPU per message, ms", "cpuMsPerMessage", 3),
      ]),
      "",
      `Not delivered within the drain time: ${lost}. Machine: ${r.machine.cpus} CPU(s), node ${r.machine.node}.`,
      "",
    ].join("\n"));
  },
);
