#!/usr/bin/env node
// Where a publish spends its CPU: a V8 CPU profile of Boomerang's isolate under publish load.
//
// Serves a snapshot of the sources with Miniflare's API (as `npm start` does, through scripts/lean.mjs) with the
// inspector on, starts a destination that answers 200, warms up, then records a CPU profile over the Chrome
// DevTools protocol (Profiler.start / Profiler.stop) while N connections publish in a closed loop. Prints the
// functions with the most self time, the share of idle time, and writes the raw profile (open it in Chrome
// DevTools or speedscope) and a summary to bench/results/.
//
// The profile covers the worker's isolate only: D1, the queue broker and Durable Objects run in other
// workerd threads, and their CPU is not in it. Deliveries run in the same isolate as publishes, so they are in
// the profile too (look at `--deliveries` to see how many happened during the window).
//
// With `--relay`, attempts go through the attempt relay (scripts/relay.mjs) as under `npm start`; without it, the
// worker makes its calls itself.
//
// Usage: node bench/profile.mjs [--concurrency 32] [--seconds 5] [--top 30] [--delay S] [--drain N] [--relay] [--help]

import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Bench, HOST, cliOptions, fmt, freePort, gitCommit, loadLoop, machineInfo, root, startDestination, TOKEN } from "./lib.mjs";

const SPEC = {
  options: {
    concurrency: { value: 32, min: 1, max: 256, help: "publishes in flight" },
    "body-bytes": { value: 0, min: 0, max: 262_144, help: "pad each JSON body to about this many bytes (0: a few bytes)" },
    seconds: { value: 5, min: 1, max: 60, help: "length of the profiled window" },
    top: { value: 30, min: 5, max: 200, help: "functions listed by self time" },
    interval: { value: 100, min: 10, max: 10_000, help: "sampling interval in microseconds" },
    delay: { value: 0, min: 0, max: 86_400, help: "publish with Upstash-Delay of this many seconds, so the window holds publishes only (no deliveries)" },
    drain: { value: 0, min: 0, max: 200_000, help: "profile deliveries instead: store this many messages, all due at one moment, and profile while they drain (no publishes in the window)" },
    "max-minutes": { value: 10, min: 1, max: 60, help: "hard time limit" },
  },
  flags: {
    relay: "make attempts through the attempt relay (scripts/relay.mjs), as npm start does",
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "profile.mjs");
const bench = new Bench("profile", opts);

/** A minimal Chrome DevTools protocol client over the `ws` package that Miniflare itself depends on. */
async function devtools(port) {
  const require = createRequire(createRequire(import.meta.url).resolve("miniflare"));
  const WebSocket = require("ws");
  const res = await fetch(`http://${HOST}:${port}/json`);
  const targets = await res.json();
  const target = targets.find((t) => String(t.id).includes("boomerang"));
  if (!target) throw new Error(`no inspector target for the boomerang worker among ${targets.map((t) => t.id).join(", ")}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl ?? `ws://${HOST}:${port}/${target.id}`);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let next = 1;
  const pending = new Map();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    const done = msg.id ? pending.get(msg.id) : null;
    if (!done) return;
    pending.delete(msg.id);
    if (msg.error) done.reject(new Error(`${msg.error.message} (${msg.error.code})`));
    else done.resolve(msg.result);
  });
  bench.onCleanup(async () => ws.close());
  return (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
      setTimeout(() => {
        if (pending.delete(id)) reject(new Error(`${method}: no answer from the inspector within 60 s`));
      }, 60_000).unref();
    });
}

/** Self time per function (name, file, line), largest first, from a V8 CPU profile. */
function selfTimes(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map();
  let all = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const f = nodes.get(id).callFrame;
    const file = f.url ? f.url.split("/").pop() : "";
    const key = `${f.functionName || "(anonymous)"}${file ? ` ${file}:${f.lineNumber + 1}` : ""}`;
    totals.set(key, (totals.get(key) ?? 0) + dt);
    all += dt;
  });
  return { all, rows: [...totals].sort((a, b) => b[1] - a[1]) };
}

async function main() {
  bench.setTimeLimit(opts["max-minutes"]);
  const result = { benchmark: "profile", startedAt: new Date(bench.startedAt).toISOString(), machine: machineInfo(), options: { ...opts }, source: { commit: gitCommit() } };
  await bench.finish(result, async () => {
    const snap = bench.snapshotSources();
    result.source.snapshotFingerprint = snap.fingerprint;
    let deliveries = 0;
    const dest = await startDestination(bench, () => deliveries++);
    const persistDir = path.join(bench.workDir, "state");
    await bench.wrangler(snap.appDir, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir], { timeoutMs: 180_000, label: "wrangler d1 migrations apply" });
    const inspectorPort = await freePort();
    let options = { ...(await bench.boomerangMiniflareOptions({ appDir: snap.appDir, persistDir, port: await freePort() })), inspectorPort };
    let relay = null;
    if (opts.relay) {
      const secret = randomBytes(24).toString("hex");
      const { forkRelay } = await import(pathToFileURL(path.join(snap.appDir, "scripts", "relay.mjs")).href);
      const { withRelay } = await import(pathToFileURL(path.join(snap.appDir, "scripts", "lean.mjs")).href);
      relay = await forkRelay(secret);
      options = withRelay(options, relay.address, secret);
      bench.log(`attempts go through the attempt relay on ${relay.address}`);
    }
    const boomerang = await bench.startMiniflare({ label: "Boomerang (inspector on)", options });
    const publish = (i) => ({
      url: `${boomerang.base}/v2/publish/${dest.base}/p/ok?i=${i}`,
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...(opts.delay > 0 ? { "upstash-delay": `${opts.delay}s` } : {}) },
      body: JSON.stringify(opts["body-bytes"] ? { i, pad: "x".repeat(Math.max(0, opts["body-bytes"] - 20)) } : { i }),
    });
    bench.log("warm-up: 3 s of publishing (not profiled) …");
    await loadLoop({ makeRequest: publish, concurrency: opts.concurrency, durationMs: 3000, maxRequests: 100_000 });
    const send = await devtools(inspectorPort);
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: opts.interval });
    if (opts.drain > 0) {
      // Deliveries only: messages stored ahead, all due at once, then a window with no publishes.
      await new Promise((r) => setTimeout(r, 5000));
      const dueAt = Math.ceil(Date.now() / 1000) + Math.ceil(opts.drain / 500) + 5;
      bench.log(`storing ${fmt(opts.drain)} messages, all due at ${new Date(dueAt * 1000).toISOString()} …`);
      const stored = await loadLoop({
        makeRequest: (i) => ({ ...publish(i), headers: { ...publish(i).headers, "upstash-not-before": String(dueAt) } }),
        concurrency: opts.concurrency,
        durationMs: 600_000,
        maxRequests: opts.drain,
      });
      const base = deliveries;
      while (Date.now() < dueAt * 1000) await new Promise((r) => setTimeout(r, 100));
      bench.log(`profiling ${opts.seconds} s of deliveries (${fmt(stored.ok)} stored) …`);
      await send("Profiler.start");
      await new Promise((r) => setTimeout(r, opts.seconds * 1000));
      const { profile } = await send("Profiler.stop");
      const { all, rows } = selfTimes(profile);
      const idle = rows.find(([k]) => k === "(idle)")?.[1] ?? 0;
      const n = deliveries - base;
      result.deliveriesDuringWindow = n;
      result.busyMsPerDelivery = n ? Number(((all - idle) / 1000 / n).toFixed(3)) : null;
      result.top = rows.slice(0, opts.top).map(([fn, us]) => ({ fn, ms: Math.round(us / 100) / 10, share: Number(((100 * us) / all).toFixed(1)) }));
      console.log(`\n${fmt(n)} deliveries in ${opts.seconds} s (${fmt(n / opts.seconds)}/s); isolate busy ${(((all - idle) / all) * 100).toFixed(0)} % = ${result.busyMsPerDelivery} ms per delivery\n`);
      console.log("| self ms | share | function |\n|---:|---:|---|");
      for (const r of result.top) console.log(`| ${r.ms} | ${r.share} % | \`${r.fn}\` |`);
      return;
    }
    const before = deliveries;
    bench.log(`profiling ${opts.seconds} s of publishing at concurrency ${opts.concurrency} …`);
    await send("Profiler.start");
    const load = await loadLoop({ makeRequest: publish, concurrency: opts.concurrency, durationMs: opts.seconds * 1000, maxRequests: 1_000_000, isStopped: () => bench.interrupted });
    const { profile } = await send("Profiler.stop");
    const { all, rows } = selfTimes(profile);
    const idle = rows.find(([k]) => k === "(idle)")?.[1] ?? 0;
    result.publishes = load.ok;
    result.publishesPerSecond = Math.round(load.rps);
    result.deliveriesDuringWindow = deliveries - before;
    result.sampledMs = Math.round(all / 1000);
    result.busyMsPerPublish = load.ok ? Number(((all - idle) / 1000 / load.ok).toFixed(3)) : null;
    result.top = rows.slice(0, opts.top).map(([fn, us]) => ({ fn, ms: Math.round(us / 100) / 10, share: Number(((100 * us) / all).toFixed(1)) }));
    const file = path.join(bench.resultsDir, `profile-${bench.stamp}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    result.profileFile = path.relative(root, file);
    console.log(`\n${fmt(load.ok)} publishes (${fmt(load.rps)}/s, ${load.failed} failed), ${fmt(result.deliveriesDuringWindow)} deliveries in the window; isolate busy ${(((all - idle) / all) * 100).toFixed(0)} % of ${fmt(all / 1000)} ms = ${result.busyMsPerPublish} ms per publish\n`);
    console.log("| self ms | share | function |\n|---:|---:|---|");
    for (const r of result.top) console.log(`| ${r.ms} | ${r.share} % | \`${r.fn}\` |`);
  });
}

main();
