#!/usr/bin/env node
// Publish → delivery and publish → callback latency, next to a bare-worker round trip, in the same run.
//
// Starts its own destination (a Node server answering 200), the bare hello worker (bench/hello, wrangler dev) and
// Boomerang (scripts/dev.mjs on a snapshot of the sources, fresh state). Then, one message at a time (each waits
// for the previous one to arrive, so no message queues behind another), per run:
//   - bare:     GET / on the hello worker (request start → full answer)
//   - delivery: POST /v2/publish/<destination>, request start → the destination has its headers
//   - callback: the same with Upstash-Callback: <destination>/cb/…, request start → the callback arrives
// All timestamps come from this process's clock. After each run the server's logs give a breakdown
// (request → server accepted → consumer claimed → arrival). Prints a Markdown table with medians of the per-run
// p50 / p99 and writes bench/results/latency-<date>.json.
//
// `--server lean` serves Boomerang as `npm start` does (Miniflare's API, no dev proxy) and hello with Miniflare's API.
//
// Usage: node bench/latency.mjs [--count 300] [--callbacks 300] [--runs 3] [--server wrangler] [--help]

import http from "node:http";
import path from "node:path";
import { Bench, api, describeError, fmt, gitCommit, httpRequest, machineInfo, markdownTable, median, now, cpuSample, otherCores, ratio, serverTimes, startDestination, summarize, cliOptions, checkServerOption } from "./lib.mjs";

/** The local targets: p50 and p99, for publish → delivery and publish → callback. */
const GOAL_P50_MS = 50;
const GOAL_P99_MS = 250;

const SPEC = {
  options: {
    count: { value: 300, min: 1, max: 10_000, help: "sequential publishes per run (publish → delivery)" },
    callbacks: { value: 300, min: 0, max: 10_000, help: "sequential publishes with Upstash-Callback per run" },
    runs: { value: 3, min: 1, max: 10, help: "repetitions (medians of the per-run percentiles are reported)" },
    "wait-ms": { value: 15_000, min: 1000, max: 120_000, help: "how long one message may take to arrive before it counts as missing" },
    server: { value: "wrangler", text: true, help: "how both workers are served: wrangler (wrangler dev, as npm run dev does) or lean (npm start: Miniflare's API, no dev proxy / inspector)" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
  },
  flags: {
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "latency.mjs", checkServerOption);
const bench = new Bench("latency", opts);

// ---------------------------------------------------------------------------------------------------------------
// Arrivals: each expected path has a waiter

/** path → { resolve, at } */
const expected = new Map();
let strays = 0;
let duplicates = 0;

function expect(pathname) {
  let resolve = () => {};
  const promise = new Promise((r) => (resolve = r));
  const entry = { at: null, messageId: null, resolve, promise };
  expected.set(pathname, entry);
  return entry;
}

function onArrival(a) {
  const e = expected.get(a.path);
  if (!e) {
    strays += 1;
    return;
  }
  if (e.at !== null) {
    duplicates += 1;
    return;
  }
  e.at = a.at;
  e.messageId = a.messageId;
  e.resolve();
}

/** Resolves true when the entry arrived, false after `ms`. */
async function arrived(entry, ms) {
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(() => r(false), ms)));
  const ok = await Promise.race([entry.promise.then(() => true), timeout]);
  clearTimeout(timer);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// One run

let hello;
let boomerang;
let destBase = "";
let apiAgent;
let helloAgent;

async function bareOnce() {
  const r = await httpRequest({ url: `${hello.base}/`, agent: helloAgent });
  if (r.status !== 200) throw new Error(`the hello worker answered ${r.status}`);
  return r.ms;
}

/** Publishes one message (optionally with a callback) and waits for it (and its callback) to arrive. */
async function publishOnce(tag, withCallback) {
  const dest = expect(`/lat/${tag}`);
  const cb = withCallback ? expect(`/cb/${tag}`) : null;
  const headers = { "content-type": "text/plain" };
  if (cb) headers["Upstash-Callback"] = `${destBase}/cb/${tag}`;
  const start = now();
  const t0 = performance.now();
  let messageId = null;
  let error = null;
  try {
    const body = await api(boomerang.base, apiAgent, "POST", `/v2/publish/${destBase}/lat/${tag}`, { headers, body: `latency ${tag}` });
    messageId = body && typeof body.messageId === "string" ? body.messageId : null;
  } catch (err) {
    error = describeError(err);
  }
  const publishMs = performance.now() - t0;
  if (error === null) {
    await arrived(dest, opts["wait-ms"]);
    if (cb) await arrived(cb, opts["wait-ms"]);
  }
  return {
    tag,
    withCallback,
    messageId,
    error,
    start,
    publishMs: Math.round(publishMs * 10) / 10,
    deliveryMs: dest.at === null ? null : dest.at - start,
    callbackMs: cb === null || cb.at === null ? null : cb.at - start,
    idMismatch: dest.messageId !== null && messageId !== null && dest.messageId !== messageId,
    serverCreated: null,
    serverActive: null,
  };
}

async function measureRun(run, label) {
  const samples = [];
  const bare = [];
  const runStart = now();
  const cpu0 = cpuSample([hello.pid, boomerang.pid]);
  let lastLog = runStart;
  const total = Math.max(opts.count, opts.callbacks);
  for (let i = 0; i < total; i++) {
    bench.check();
    // Interleaved, so that drift in the machine's load touches every group alike.
    bare.push(await bareOnce());
    if (i < opts.count) samples.push(await publishOnce(`${run}/p/${i}`, false));
    if (i < opts.callbacks) samples.push(await publishOnce(`${run}/c/${i}`, true));
    if (now() - lastLog >= 3000) {
      lastLog = now();
      bench.log(`${label}: ${i + 1}/${total}`);
    }
  }
  const others = otherCores(cpu0, cpuSample([hello.pid, boomerang.pid]));
  try {
    const times = await serverTimes(boomerang.base, apiAgent, runStart - 1000);
    for (const s of samples) {
      const t = s.messageId ? times.get(s.messageId) : undefined;
      if (t) {
        s.serverCreated = t.created;
        s.serverActive = t.active;
      }
    }
  } catch (err) {
    bench.warn(`could not read the server's logs for the breakdown: ${describeError(err)}`);
  }
  return { ...analyze(run, bare, samples, others), otherCores: others };
}

function analyze(run, bare, samples, others) {
  const plain = samples.filter((s) => !s.withCallback);
  const withCb = samples.filter((s) => s.withCallback);
  const span = (a, b) => (a === null || b === null ? null : b - a);
  const m = {
    bare: summarize(bare),
    publishRoundTrip: summarize(plain.map((s) => s.publishMs)),
    delivery: summarize(plain.map((s) => s.deliveryMs)),
    deliveryWithCallback: summarize(withCb.map((s) => s.deliveryMs)),
    callback: summarize(withCb.map((s) => s.callbackMs)),
    toServerClock: summarize(plain.map((s) => span(s.start, s.serverCreated))),
    acceptedToClaimed: summarize(plain.map((s) => span(s.serverCreated, s.serverActive))),
    claimedToArrival: summarize(plain.map((s) => span(s.serverActive, s.start + (s.deliveryMs ?? NaN)))),
    deliveryToCallback: summarize(withCb.map((s) => (s.callbackMs === null || s.deliveryMs === null ? null : s.callbackMs - s.deliveryMs))),
  };
  const problems = {
    publishErrors: samples.filter((s) => s.error !== null).length,
    missingDeliveries: samples.filter((s) => s.error === null && s.deliveryMs === null).length,
    missingCallbacks: withCb.filter((s) => s.error === null && s.callbackMs === null).length,
    idMismatches: samples.filter((s) => s.idMismatch).length,
  };
  bench.log(
    `run ${run}: bare p50 ${fmt(m.bare.p50, 1)} ms; publish → delivery p50 ${fmt(m.delivery.p50)} / p99 ${fmt(m.delivery.p99)} ms; ` +
      `publish → callback p50 ${fmt(m.callback.p50)} / p99 ${fmt(m.callback.p99)} ms` +
      (problems.publishErrors + problems.missingDeliveries + problems.missingCallbacks ? `; problems ${JSON.stringify(problems)}` : "") +
      `; other processes used ${fmt(others, 2)} cores`,
  );
  return { run, metrics: m, problems, bare, samples };
}

async function warmUp() {
  bench.log("warm-up (not counted): compiles the workers, creates the dev tenants and the consumer …");
  for (let i = 0; i < 30; i++) await bareOnce();
  for (let i = 0; i < 15; i++) {
    const s = await publishOnce(`warm/p/${i}`, false);
    if (s.error) throw new Error(`warm-up publish failed: ${s.error}`);
  }
  for (let i = 0; i < 10; i++) await publishOnce(`warm/c/${i}`, true);
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const ROWS = [
  { key: "bare", label: "Bare hello worker round trip (baseline)" },
  { key: "publishRoundTrip", label: "Publish round trip (request → 200)" },
  { key: "delivery", label: "**Publish → delivery**", goal: true },
  { key: "toServerClock", label: "… request start → server accepted (CREATED)" },
  { key: "acceptedToClaimed", label: "… accepted → consumer claimed (ACTIVE): D1 batch, queue send, queue hop" },
  { key: "claimedToArrival", label: "… claimed → arrival: D1 claim (load + lease in one round trip), signing, HTTP to the destination" },
  { key: "deliveryWithCallback", label: "Publish → delivery (messages with a callback)" },
  { key: "callback", label: "**Publish → callback arrival**", goal: true },
  { key: "deliveryToCallback", label: "… delivery → callback arrival (outcome batch, callback claimed and sent in the same invocation)" },
];

function buildReport(runs, result) {
  const rows = [];
  const summary = {};
  for (const r of ROWS) {
    const p50s = runs.map((x) => x.metrics[r.key].p50);
    const p99s = runs.map((x) => x.metrics[r.key].p99);
    const s = { p50: median(p50s), p99: median(p99s), perRunP50: p50s, perRunP99: p99s, n: runs.reduce((t, x) => t + x.metrics[r.key].n, 0) };
    summary[r.key] = s;
    let verdict = "";
    if (r.goal) {
      const met = s.p50 !== null && s.p99 !== null && s.p50 <= GOAL_P50_MS && s.p99 <= GOAL_P99_MS;
      verdict = s.p50 === null ? "–" : met ? "met" : "MISSED";
    }
    rows.push([r.label, s.n, fmt(s.p50, 1), fmt(s.p99, 1), p50s.map((v) => fmt(v, 1)).join(", "), p99s.map((v) => fmt(v, 1)).join(", "), verdict]);
  }
  const lines = [];
  lines.push(`### Latency (${opts.server === "wrangler" ? "wrangler dev" : "lean, npm start"}): ${runs.length} run(s) × (${opts.count} publishes + ${opts.callbacks} with a callback), one at a time`);
  lines.push("");
  lines.push(`Milliseconds; p50 / p99 are medians of the per-run values. Goal: p50 ≤ ${GOAL_P50_MS} ms and p99 ≤ ${GOAL_P99_MS} ms.`);
  lines.push("");
  lines.push(markdownTable(["Path", "n", "p50", "p99", "per-run p50", "per-run p99", "goal"], rows));
  lines.push("");
  const d = summary.delivery;
  const b = summary.bare;
  lines.push(`Publish → delivery p50 is ${fmt(ratio(d.p50, b.p50), 1)} × the bare round trip (${fmt(d.p50, 1)} vs ${fmt(b.p50, 1)} ms).`);
  lines.push(`Cores used by other processes during each run (of ${result.machine.cpus}): ${runs.map((r) => fmt(r.otherCores, 2)).join(", ")}.`);
  const problems = runs.reduce(
    (acc, r) => {
      for (const k of Object.keys(acc)) acc[k] += r.problems[k];
      return acc;
    },
    { publishErrors: 0, missingDeliveries: 0, missingCallbacks: 0, idMismatches: 0 },
  );
  lines.push(
    `Publish errors: ${problems.publishErrors}; missing deliveries: ${problems.missingDeliveries}; missing callbacks: ${problems.missingCallbacks}; ` +
      `duplicates: ${duplicates}; arrivals at unknown paths: ${strays}.`,
  );
  lines.push(`Machine: ${result.machine.cpus} CPU(s), ${result.machine.cpuModel}, node ${result.machine.node}; load average at start ${result.machine.loadAverageAtStart.join(" ")}.`);
  return { markdown: lines.join("\n"), summary, problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const perRunS = (Math.max(opts.count, opts.callbacks) * 0.2 + 10);
  const estimateMin = 1.5 + (opts.runs * perRunS) / 60;
  const limit = opts["max-minutes"] || Math.ceil(estimateMin * 3 + 5);
  bench.setTimeLimit(limit);
  const machine = machineInfo();
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; hard limit ${limit} min`);
  if (machine.loadAverageAtStart[0] >= machine.cpus) bench.warn("the load average is at or above the CPU count: other work on this machine will skew the numbers");
  const result = {
    benchmark: "latency",
    startedAt: new Date(bench.startedAt).toISOString(),
    finishedAt: null,
    complete: false,
    error: null,
    machine,
    options: { ...opts },
    goal: { p50Ms: GOAL_P50_MS, p99Ms: GOAL_P99_MS },
    source: { commit: gitCommit(), snapshotFingerprint: null },
    servedBy: null,
    summary: null,
    markdown: null,
    runs: [],
  };
  apiAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  helloAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  bench.onCleanup(() => {
    apiAgent.destroy();
    helloAgent.destroy();
  });
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      result.source.snapshotFingerprint = snap.fingerprint;
      const dest = await startDestination(bench, onArrival);
      destBase = dest.base;
      const pair = await bench.startPair({ server: opts.server, appDir: snap.appDir, persistDir: path.join(bench.workDir, "state") });
      hello = pair.hello;
      boomerang = pair.boomerang;
      result.servedBy = pair.servedBy;
      await warmUp();
      for (let run = 1; run <= opts.runs; run++) result.runs.push(await measureRun(run, `run ${run}/${opts.runs}`));
    },
    () => {
      if (result.runs.length) {
        const report = buildReport(result.runs, result);
        result.summary = { ...report.summary, problems: report.problems };
        result.markdown = report.markdown;
        console.log(`\n${report.markdown}\n`);
      }
    },
  );
}

await main();
