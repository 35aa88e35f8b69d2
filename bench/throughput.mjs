#!/usr/bin/env node
// Publish throughput against a bare "hello" worker served the same way (wrangler dev), side by side.
//
// Starts its own destination (a Node server answering 200), the bare hello worker (bench/hello) and Boomerang
// (scripts/dev.mjs on a snapshot of the sources, fresh state), then for each run and each concurrency:
//   1. bare:    GET /  on the hello worker                         (the ceiling of `wrangler dev` itself)
//   2. (split)  GET /  on Boomerang, GET /v2/keys (auth + 1 D1 read) (where the gap between 1 and 3 goes)
//   3. publish: POST /v2/publish/<destination>                      (1 D1 batch + 1 queue send per request)
//   4. waits until every accepted message reached the destination, counting deliveries/s during and after.
// Each point is a closed loop of N keep-alive connections for a fixed time. Reports medians over the runs and the
// ratio publish ÷ bare per concurrency (goal ≥ 0.5), prints a Markdown table and writes
// bench/results/throughput-<date>.json.
//
// `--server lean` serves Boomerang as `npm start` does (Miniflare's API: no dev proxy, no inspector) and the hello
// worker with Miniflare's API; the default serves both with `wrangler dev`, as `npm run dev` does.
//
// Usage: node bench/throughput.mjs [--concurrency 1,8,32] [--seconds 5] [--runs 3] [--server wrangler] [--help]

import path from "node:path";
import { Bench, api, cpuDelta, cpuSample, fmt, gitCommit, groupCpu, loadLoop, machineInfo, markdownTable, median, now, otherCores, ratio, startDestination, TOKEN, waitFor, cliOptions, checkServerOption } from "./lib.mjs";
import http from "node:http";

const GOAL_RATIO = 0.5;

const SPEC = {
  options: {
    concurrency: { value: [1, 8, 32], list: true, min: 1, max: 256, help: "connections in flight, one point each" },
    seconds: { value: 5, min: 1, max: 60, help: "seconds per measured point" },
    runs: { value: 3, min: 1, max: 10, help: "repetitions of the whole sweep (medians are reported)" },
    "max-requests": { value: 100_000, min: 100, max: 1_000_000, help: "hard cap on requests per point" },
    drain: { value: 120, min: 5, max: 900, help: "seconds to wait for the deliveries of a publish point" },
    server: { value: "wrangler", text: true, help: "how both workers are served: wrangler (wrangler dev, as npm run dev does) or lean (npm start: Miniflare's API, no dev proxy / inspector)" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
  },
  flags: {
    "no-breakdown": "skip the Boomerang GET / and GET /v2/keys points",
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "throughput.mjs", checkServerOption);
const bench = new Bench("throughput", opts);

// ---------------------------------------------------------------------------------------------------------------
// Deliveries, counted per publish point at the destination

/** Per point key ("<run>-<concurrency>" or "warm"): arrival times and the message ids seen. */
const points = new Map();
let strays = 0;

function pointOf(key) {
  let p = points.get(key);
  if (!p) {
    p = { arrivals: [], ids: new Set(), duplicates: 0 };
    points.set(key, p);
  }
  return p;
}

function onArrival(a) {
  const m = /^\/tp\/([^/]+)\//.exec(a.path);
  if (!m) {
    strays += 1;
    return;
  }
  const p = pointOf(m[1]);
  if (p.ids.has(a.messageId)) {
    p.duplicates += 1;
    return;
  }
  p.ids.add(a.messageId);
  p.arrivals.push(a.at);
}

// ---------------------------------------------------------------------------------------------------------------
// The measured points

let hello;
let boomerang;
let destBase = "";

function cpuNow() {
  return { hello: hello ? groupCpu(hello.pid) : {}, boomerang: boomerang ? groupCpu(boomerang.pid) : {} };
}

function cpuSince(before) {
  const after = cpuNow();
  return { hello: cpuDelta(before.hello, after.hello), boomerang: cpuDelta(before.boomerang, after.boomerang) };
}

async function measure(label, c, makeRequest, onResponse) {
  bench.check();
  const cpu0 = cpuNow();
  const pgids = [hello.pid, boomerang.pid];
  const machine0 = cpuSample(pgids);
  const log0 = bench.wranglerLogBytes();
  const r = await loadLoop({
    makeRequest,
    concurrency: c,
    durationMs: opts.seconds * 1000,
    maxRequests: opts["max-requests"],
    isStopped: () => bench.interrupted,
    onResponse,
  });
  const cpu = cpuSince(cpu0);
  const others = otherCores(machine0, cpuSample(pgids));
  const logBytes = bench.wranglerLogBytes() - log0;
  const failed = r.failed ? `, ${r.failed} failed (${r.errors[0] ?? "?"})` : "";
  bench.log(
    `  ${label.padEnd(22)} c=${String(c).padStart(3)}: ${fmt(r.rps, 1).padStart(8)} req/s, p50 ${fmt(r.latencyMs.p50, 1)} ms, p99 ${fmt(r.latencyMs.p99, 1)} ms` +
      `${failed} (other processes used ${fmt(others, 2)} cores)`,
  );
  return { ...r, cpuSeconds: cpu, otherCores: others, wranglerLogBytes: logBytes };
}

async function publishPoint(run, c) {
  const key = `${run}-${c}`;
  const p = pointOf(key);
  const accepted = new Set();
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" };
  const startWall = now();
  const r = await measure("publish", c, (i) => ({
    url: `${boomerang.base}/v2/publish/${destBase}/tp/${key}/${i}`,
    method: "POST",
    headers,
    body: `throughput ${key} ${i}`,
  }), (_i, res) => {
    try {
      const id = JSON.parse(res.body).messageId;
      if (typeof id === "string") accepted.add(id);
    } catch {
      // counted as accepted by status only
    }
  });
  const endWall = now();
  const deliveredDuring = p.arrivals.filter((t) => t <= endWall).length;
  const outcome = await waitFor(bench, {
    done: () => p.ids.size >= accepted.size,
    progress: () => p.ids.size,
    maxMs: opts.drain * 1000,
    stallMs: 50_000,
    describe: () => `  waiting for deliveries: ${p.ids.size}/${accepted.size}`,
  });
  if (outcome !== "done") bench.warn(`  only ${p.ids.size}/${accepted.size} deliveries arrived (${outcome})`);
  const lastArrival = p.arrivals.length ? Math.max(...p.arrivals) : null;
  const afterCount = p.ids.size - deliveredDuring;
  const drainMs = lastArrival !== null && lastArrival > endWall ? lastArrival - endWall : 0;
  const delivery = {
    accepted: accepted.size,
    delivered: p.ids.size,
    missing: Math.max(0, accepted.size - p.ids.size),
    duplicates: p.duplicates,
    deliveredDuringPublish: deliveredDuring,
    duringPerSec: (deliveredDuring * 1000) / Math.max(1, endWall - startWall),
    afterPerSec: drainMs > 0 ? (afterCount * 1000) / drainMs : null,
    drainMs,
    endToEndPerSec: lastArrival !== null ? (p.ids.size * 1000) / Math.max(1, lastArrival - startWall) : null,
  };
  bench.log(
    `  deliveries: ${fmt(delivery.duringPerSec, 1)}/s during publishing (${deliveredDuring}/${accepted.size}), ` +
      `then ${fmt(delivery.afterPerSec, 1)}/s for ${fmt(drainMs / 1000, 1)} s; end to end ${fmt(delivery.endToEndPerSec, 1)}/s`,
  );
  return { ...r, delivery };
}

async function sweepPoint(run, c) {
  const point = { run, concurrency: c, bare: null, boomerangRoot: null, boomerangKeys: null, publish: null };
  point.bare = await measure("bare hello GET /", c, () => ({ url: `${hello.base}/` }));
  if (!opts["no-breakdown"]) {
    point.boomerangRoot = await measure("Boomerang GET /", c, () => ({ url: `${boomerang.base}/` }));
    point.boomerangKeys = await measure("GET /v2/keys (D1 read)", c, () => ({
      url: `${boomerang.base}/v2/keys`,
      headers: { authorization: `Bearer ${TOKEN}` },
    }));
  }
  point.publish = await publishPoint(run, c);
  point.ratio = ratio(point.publish.rps, point.bare.rps);
  bench.log(`  run ${run}, c=${c}: publish ÷ bare = ${fmt(point.ratio, 2)}`);
  return point;
}

async function warmUp() {
  bench.log("warm-up (not counted): the first requests compile the workers and create the dev tenants …");
  const agent = new http.Agent({ keepAlive: true });
  try {
    await api(boomerang.base, agent, "GET", "/v2/keys");
  } finally {
    agent.destroy();
  }
  await loadLoop({ makeRequest: () => ({ url: `${hello.base}/` }), concurrency: 8, durationMs: 1500, maxRequests: 5000 });
  await loadLoop({ makeRequest: () => ({ url: `${boomerang.base}/` }), concurrency: 8, durationMs: 1000, maxRequests: 5000 });
  const p = pointOf("warm");
  const r = await loadLoop({
    makeRequest: (i) => ({
      url: `${boomerang.base}/v2/publish/${destBase}/tp/warm/${i}`,
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" },
      body: `warm ${i}`,
    }),
    concurrency: 8,
    durationMs: 5000,
    maxRequests: 200,
  });
  if (r.ok === 0) throw new Error(`warm-up publishes failed: ${r.errors[0] ?? "no answer"}`);
  await waitFor(bench, { done: () => p.ids.size >= r.ok, progress: () => p.ids.size, maxMs: 60_000, stallMs: 50_000 });
  bench.log(`warm-up: ${r.ok} published, ${p.ids.size} delivered`);
}

// ---------------------------------------------------------------------------------------------------------------
// Report

function summarizePoints(all) {
  const rows = [];
  for (const c of opts.concurrency) {
    const mine = all.filter((p) => p.concurrency === c);
    const pick = (f) => mine.map(f).filter((v) => v !== null && v !== undefined);
    rows.push({
      concurrency: c,
      runs: mine.length,
      bareRps: median(pick((p) => p.bare.rps)),
      rootRps: median(pick((p) => p.boomerangRoot?.rps)),
      keysRps: median(pick((p) => p.boomerangKeys?.rps)),
      publishRps: median(pick((p) => p.publish.rps)),
      ratio: median(pick((p) => p.ratio)),
      perRunRatios: pick((p) => (p.ratio === null ? null : Number(p.ratio.toFixed(3)))),
      bareP50: median(pick((p) => p.bare.latencyMs.p50)),
      publishP50: median(pick((p) => p.publish.latencyMs.p50)),
      publishP99: median(pick((p) => p.publish.latencyMs.p99)),
      deliveryDuring: median(pick((p) => p.publish.delivery.duringPerSec)),
      deliveryAfter: median(pick((p) => p.publish.delivery.afterPerSec)),
      deliveryEndToEnd: median(pick((p) => p.publish.delivery.endToEndPerSec)),
      drainS: median(pick((p) => p.publish.delivery.drainMs / 1000)),
      missing: mine.reduce((s, p) => s + p.publish.delivery.missing, 0),
      failed: mine.reduce((s, p) => s + p.publish.failed + p.bare.failed, 0),
      otherCores: median(pick((p) => median([p.bare.otherCores, p.publish.otherCores]))),
      wranglerLogBytesPerPublish: median(pick((p) => (p.publish.ok ? p.publish.wranglerLogBytes / p.publish.ok : null))),
      boomerangCpuPerPublish: median(
        pick((p) => {
          const cpu = p.publish.cpuSeconds.boomerang;
          const total = Object.values(cpu).reduce((s, v) => s + v, 0);
          return p.publish.ok ? (total * 1000) / p.publish.ok : null;
        }),
      ),
      helloCpuPerRequest: median(
        pick((p) => {
          const total = Object.values(p.bare.cpuSeconds.hello).reduce((s, v) => s + v, 0);
          return p.bare.ok ? (total * 1000) / p.bare.ok : null;
        }),
      ),
    });
  }
  return rows;
}

function markdown(rows, result) {
  const lines = [];
  lines.push(`### Publish throughput (${opts.server === "wrangler" ? "wrangler dev" : "lean, npm start"}): ${opts.runs} run(s) × ${opts.seconds} s per point, medians`);
  lines.push("");
  const withSplit = !opts["no-breakdown"];
  const headers = ["Concurrency", "bare hello req/s", ...(withSplit ? ["Boomerang GET / req/s", "GET /v2/keys req/s"] : []), "publish req/s", "publish ÷ bare (per run)", `goal ≥ ${GOAL_RATIO}`, "publish p50 / p99 ms", "deliveries/s during publish", "deliveries/s after", "end-to-end deliveries/s", "drain s", "other cores"];
  const body = rows.map((r) => [
    r.concurrency,
    fmt(r.bareRps),
    ...(withSplit ? [fmt(r.rootRps), fmt(r.keysRps)] : []),
    fmt(r.publishRps),
    `**${fmt(r.ratio, 2)}** (${r.perRunRatios.map((v) => v.toFixed(2)).join(", ")})`,
    r.ratio === null ? "–" : r.ratio >= GOAL_RATIO ? "met" : "MISSED",
    `${fmt(r.publishP50, 1)} / ${fmt(r.publishP99, 1)}`,
    fmt(r.deliveryDuring),
    fmt(r.deliveryAfter),
    fmt(r.deliveryEndToEnd),
    fmt(r.drainS, 1),
    fmt(r.otherCores, 2),
  ]);
  lines.push(markdownTable(headers, body));
  lines.push("");
  lines.push(
    "CPU per request (ms, all processes of the server's group: wrangler's node proxy + workerd): " +
      rows.map((r) => `c=${r.concurrency}: hello ${fmt(r.helloCpuPerRequest, 2)}, publish ${fmt(r.boomerangCpuPerPublish, 2)} (delivery included)`).join("; ") +
      ".",
  );
  lines.push(
    "wrangler debug log written per publish (bytes; wrangler logs every DevTools Network event of every subrequest): " +
      rows.map((r) => `c=${r.concurrency}: ${fmt(r.wranglerLogBytesPerPublish)}`).join("; ") +
      ". \"other cores\": CPU used meanwhile by processes other than this benchmark and its servers (of " +
      `${result.machine.cpus}).`,
  );
  const missing = rows.reduce((s, r) => s + r.missing, 0);
  const failed = rows.reduce((s, r) => s + r.failed, 0);
  lines.push(`Publishes that failed: ${failed}; accepted messages never delivered: ${missing}; arrivals at unknown paths: ${strays}.`);
  lines.push(`Machine: ${result.machine.cpus} CPU(s), ${result.machine.cpuModel}, node ${result.machine.node}; load average at start ${result.machine.loadAverageAtStart.join(" ")}.`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const perPoint = opts.seconds * (opts["no-breakdown"] ? 2 : 4) + 15;
  const estimateMin = 2 + (opts.runs * opts.concurrency.length * perPoint) / 60;
  const limit = opts["max-minutes"] || Math.ceil(estimateMin * 2 + (opts.runs * opts.concurrency.length * opts.drain) / 60 / 2);
  bench.setTimeLimit(limit);
  const machine = machineInfo();
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; estimate ${estimateMin.toFixed(1)} min, hard limit ${limit} min`);
  if (machine.loadAverageAtStart[0] >= machine.cpus) bench.warn("the load average is at or above the CPU count: other work on this machine will skew the numbers");
  const result = {
    benchmark: "throughput",
    startedAt: new Date(bench.startedAt).toISOString(),
    finishedAt: null,
    complete: false,
    error: null,
    machine,
    options: { ...opts },
    goal: { publishOverBare: GOAL_RATIO },
    source: { commit: gitCommit(), snapshotFingerprint: null },
    servedBy:
      opts.server === "wrangler"
        ? "wrangler dev (Boomerang through scripts/dev.mjs --quiet; hello through wrangler dev --config bench/hello/wrangler.toml --log-level warn)"
        : "lean: Boomerang through scripts/start.mjs (npm start); hello through Miniflare's API; no sweeper",
    summary: null,
    markdown: null,
    points: [],
  };
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
      await warmUp();
      for (let run = 1; run <= opts.runs; run++) {
        for (const c of opts.concurrency) {
          bench.log(`run ${run}/${opts.runs}, concurrency ${c}:`);
          result.points.push(await sweepPoint(run, c));
        }
      }
    },
    () => {
      if (result.points.length) {
        const rows = summarizePoints(result.points);
        result.summary = rows;
        result.markdown = markdown(rows, result);
        console.log(`\n${result.markdown}\n`);
      }
    },
  );
}

await main();
