#!/usr/bin/env node
// Open-loop publishing at fixed rates against Boomerang served as `npm start` does: what is accepted, what is
// pushed back (503 with Retry-After), what fails otherwise (resets, timeouts, proxy errors), how fast deliveries
// keep up, and whether every accepted message is delivered exactly once.
//
//   1. capacity: a closed loop of 32 keep-alive connections for --seconds: accepted publishes/s (or --capacity N).
//   2. for each level L of --levels (multiples of the capacity) or each rate of --rates (messages/s): requests are
//      sent on a fixed schedule for --seconds, whatever the answers (open loop; latency counts from the scheduled
//      time, so waiting in the client's own line counts too). Then it waits until every accepted message arrived.
// Reports per level: offered and accepted /s, 503s with Retry-After, other failures, accepted p50 / p99, deliveries
// /s during the load and sustained (from 2 s in, once the pipeline is full), the backlog when the load stopped (in seconds of the offered rate), lost and duplicated.
//
// Usage: node bench/overload.mjs [--levels 1,2,4] [--rates 1000] [--seconds 10] [--capacity 0] [--drain 120] [--help]

import path from "node:path";
import { Bench, TOKEN, cliOptions, fmt, freePort, gitCommit, httpRequest, keepAliveAgent, loadLoop, machineInfo, markdownTable, startDestination, summarize } from "./lib.mjs";

const SPEC = {
  options: {
    levels: { value: [1, 2, 4], list: true, min: 0.1, max: 20, help: "offered rates as multiples of the measured capacity" },
    rates: { value: [], list: true, min: 1, max: 20_000, help: "offered rates in messages/s (instead of --levels)" },
    seconds: { value: 10, min: 2, max: 120, help: "seconds of load per level" },
    capacity: { value: 0, min: 0, max: 100_000, help: "accepted publishes/s to scale --levels by (0: measure it first)" },
    drain: { value: 120, min: 5, max: 900, help: "seconds to wait for the deliveries of a level" },
    var: { value: "", text: true, help: "KEY:VALUE settings passed to npm start (--var), comma-separated" },
    steady: { value: 50, min: 0, max: 1000, help: "first a steady rate (messages/s) for latency: publish → delivery, then the lag of 2 s delays (0: skip)" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
  },
  flags: {
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "overload.mjs");
const bench = new Bench("overload", opts);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Deliveries count toward the sustained rate from this long after the load starts. */
const SETTLE_MS = 2_000;

/** Arrivals at the destination, by level key: times and how often each message id came. */
const arrivals = new Map();
function onArrival({ at, path: p, messageId }) {
  const [, key = "", index = ""] = p.split("/");
  let a = arrivals.get(key);
  if (!a) arrivals.set(key, (a = { times: [], ids: new Map(), byIndex: new Map() }));
  a.times.push(at);
  a.ids.set(messageId, (a.ids.get(messageId) ?? 0) + 1);
  if (!a.byIndex.has(index)) a.byIndex.set(index, at);
}

/** One level: `rate` publishes/s on a fixed schedule for `seconds`, then the wait for their deliveries. */
async function level(base, destBase, key, rate, seconds, { delayS = 0 } = {}) {
  const agent = keepAliveAgent({ maxSockets: 1024 });
  const total = Math.round(rate * seconds);
  const accepted = [];
  const latencies = [];
  const counts = { accepted: 0, pushedBack: 0, pushedBackWithoutRetryAfter: 0, otherStatus: 0, resets: 0, timeouts: 0, otherErrors: 0 };
  const samples = [];
  const t0 = performance.now();
  const wallStart = Date.now();
  const inFlight = new Set();
  /** Wall-clock send time of each request, for publish → delivery latency. */
  const sentAt = new Map();
  let sent = 0;
  const send = (i) => {
    const scheduled = t0 + (i * 1000) / rate;
    sentAt.set(String(i), Date.now());
    const headers = { authorization: `Bearer ${TOKEN}`, ...(delayS ? { "upstash-delay": `${delayS}s` } : {}) };
    const p = httpRequest({ url: `${base}/v2/publish/${destBase}/${key}/${i}`, method: "POST", headers, body: `m${i}`, agent, timeoutMs: 30_000 })
      .then((r) => {
        if (r.status === 200) {
          counts.accepted++;
          latencies.push(performance.now() - scheduled);
          accepted.push(JSON.parse(r.body).messageId);
        } else if (r.status === 503 || r.status === 429) {
          counts.pushedBack++;
          if (!r.headers["retry-after"]) counts.pushedBackWithoutRetryAfter++;
        } else {
          counts.otherStatus++;
          if (samples.length < 5) samples.push(`${r.status}: ${r.body.slice(0, 120)}`);
        }
      })
      .catch((err) => {
        const code = err.code ?? "";
        if (code === "ECONNRESET" || code === "EPIPE" || code === "ECONNREFUSED") counts.resets++;
        else if (/no answer within/.test(err.message)) counts.timeouts++;
        else counts.otherErrors++;
        if (samples.length < 5) samples.push(`${code || err.message}`.slice(0, 120));
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    while (sent < due) send(sent++);
    await sleep(2);
  }
  const loadEnd = Date.now();
  await Promise.all([...inFlight]);
  agent.destroy();
  const a = () => arrivals.get(key) ?? { times: [], ids: new Map(), byIndex: new Map() };
  const deliveredDuring = a().times.filter((t) => t <= loadEnd).length;
  // The sustained rate leaves out the first SETTLE_MS, while the pipeline fills: "during" counts the whole window, so
  // at a rate it keeps up with it still falls short of the offered rate by what is on its way at the end.
  const settledFrom = wallStart + SETTLE_MS;
  const sustainedPerS = loadEnd > settledFrom ? a().times.filter((t) => t > settledFrom && t <= loadEnd).length / ((loadEnd - settledFrom) / 1000) : null;
  const backlogAtEnd = Math.max(0, counts.accepted - deliveredDuring);
  // Every accepted message must arrive.
  const waitUntil = Date.now() + opts.drain * 1000;
  let last = -1;
  while (Date.now() < waitUntil) {
    const got = accepted.filter((id) => a().ids.has(id)).length;
    if (got === accepted.length) break;
    if (got !== last) bench.log(`  waiting for deliveries: ${got}/${accepted.length}`);
    last = got;
    await sleep(1000);
  }
  const delivered = accepted.filter((id) => a().ids.has(id)).length;
  const duplicates = [...a().ids.values()].reduce((n, c) => n + (c > 1 ? c - 1 : 0), 0);
  const lastArrival = a().times.reduce((m, t) => Math.max(m, t), loadEnd);
  // Publish → delivery (immediate), or delivery → its due time (sent + delay), per message that arrived.
  const toDelivery = [...a().byIndex].filter(([i]) => sentAt.has(i)).map(([i, at]) => at - sentAt.get(i) - delayS * 1000);
  return {
    key,
    rate,
    seconds,
    offered: total,
    ...counts,
    acceptedPerS: counts.accepted / seconds,
    pushedBackPerS: counts.pushedBack / seconds,
    latencyMs: summarize(latencies),
    deliveryMs: summarize(toDelivery),
    delayS,
    deliveredDuringPerS: deliveredDuring / ((loadEnd - wallStart) / 1000),
    sustainedPerS,
    backlogAtEnd,
    backlogSeconds: backlogAtEnd / rate,
    drainS: (lastArrival - loadEnd) / 1000,
    lost: accepted.length - delivered,
    duplicates,
    samples,
  };
}

function markdown(rows, result) {
  const lines = [];
  for (const s of result.steady) {
    lines.push(`- steady ${fmt(s.rate)}/s for ${s.seconds} s, ${s.delayS ? `delayed ${s.delayS} s: delivery after the due time` : "publish → delivery"} p50 / p99: **${fmt(s.deliveryMs.p50, 1)} / ${fmt(s.deliveryMs.p99, 1)} ms** (${s.deliveryMs.n} delivered, ${s.lost} lost)`);
  }
  if (result.steady.length) lines.push("");
  lines.push(`### Open-loop publishing, Boomerang as \`npm start\` serves it: ${opts.seconds} s per level, capacity ${fmt(result.capacity)} accepted/s (closed loop, 32 connections)`);
  lines.push("");
  lines.push(
    markdownTable(
      ["offered /s", "accepted /s", "503 + Retry-After /s", "other failures", "accepted p50 / p99 ms", "deliveries /s during", `sustained /s (after ${SETTLE_MS / 1000} s)`, "publish → delivery p50 / p99 ms", "backlog at the end", "lost", "duplicated"],
      rows.map((r) => [
        `${fmt(r.rate)}${r.level ? ` (${r.level}×)` : ""}`,
        fmt(r.acceptedPerS),
        `${fmt(r.pushedBackPerS)}${r.pushedBackWithoutRetryAfter ? ` (${r.pushedBackWithoutRetryAfter} without)` : ""}`,
        String(r.otherStatus + r.resets + r.timeouts + r.otherErrors),
        `${fmt(r.latencyMs.p50, 1)} / ${fmt(r.latencyMs.p99, 1)}`,
        fmt(r.deliveredDuringPerS),
        r.sustainedPerS === null ? "–" : fmt(r.sustainedPerS),
        `${fmt(r.deliveryMs.p50, 0)} / ${fmt(r.deliveryMs.p99, 0)}`,
        `${fmt(r.backlogAtEnd)} (${fmt(r.backlogSeconds, 2)} s)`,
        String(r.lost),
        String(r.duplicates),
      ]),
      ["r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
    ),
  );
  lines.push("");
  lines.push(`Other failures: resets, timeouts (30 s) and answers other than 200 / 503 / 429. Machine: ${result.machine.cpus} CPU(s), node ${result.machine.node}; load average at start ${result.machine.loadAverageAtStart.join(" ")}.`);
  return lines.join("\n");
}

async function main() {
  const levels = opts.rates.length ? opts.rates.length : opts.levels.length;
  const limit = opts["max-minutes"] || Math.ceil(4 + (levels * (opts.seconds + opts.drain)) / 60 + opts.seconds / 60);
  bench.setTimeLimit(limit);
  const machine = machineInfo();
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; hard limit ${limit} min`);
  const result = { benchmark: "overload", startedAt: new Date(bench.startedAt).toISOString(), machine, options: { ...opts }, source: { commit: gitCommit() }, capacity: null, steady: [], levels: [], markdown: null };
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      const dest = await startDestination(bench, onArrival);
      const boomerang = await bench.startBoomerang({ appDir: snap.appDir, persistDir: path.join(bench.workDir, "state"), port: await freePort(), lean: true, vars: Object.fromEntries(String(opts.var).split(",").filter(Boolean).map((kv) => kv.split(/:(.*)/s).slice(0, 2))) });
      bench.log("warm-up: 200 publishes …");
      await level(boomerang.base, dest.base, "warm", 100, 2);
      if (opts.steady > 0) {
        for (const delayS of [0, 2]) {
          bench.log(`steady: ${opts.steady} publishes/s for ${opts.seconds} s${delayS ? `, each delayed ${delayS} s` : ""} …`);
          const r = await level(boomerang.base, dest.base, `s${delayS}`, opts.steady, opts.seconds, { delayS });
          bench.log(`  ${delayS ? "delivery after the due time" : "publish → delivery"}: p50 ${fmt(r.deliveryMs.p50, 1)} ms, p99 ${fmt(r.deliveryMs.p99, 1)} ms (${r.deliveryMs.n} delivered, lost ${r.lost})`);
          result.steady.push(r);
        }
      }
      if (opts.rates.length === 0 && opts.capacity === 0) {
        bench.log(`capacity: a closed loop of 32 connections for ${opts.seconds} s …`);
        let i = 0;
        const loop = await loadLoop({
          makeRequest: () => ({ url: `${boomerang.base}/v2/publish/${dest.base}/cap/${i++}`, method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "c" }),
          concurrency: 32,
          durationMs: opts.seconds * 1000,
          maxRequests: 1_000_000,
        });
        result.capacity = loop.rps;
        bench.log(`capacity: ${fmt(loop.rps)} accepted/s (statuses ${JSON.stringify(loop.statuses)}); letting its deliveries finish …`);
        await sleep(Math.min(60_000, (loop.ok / Math.max(1, loop.rps)) * 1000 + 5_000));
      } else result.capacity = opts.capacity || null;
      const plan = opts.rates.length ? opts.rates.map((r) => ({ rate: r, level: null })) : opts.levels.map((l) => ({ rate: Math.round(l * result.capacity), level: l }));
      for (const [n, p] of plan.entries()) {
        bench.log(`level ${n + 1}/${plan.length}: ${fmt(p.rate)} publishes/s for ${opts.seconds} s …`);
        const r = { level: p.level, ...(await level(boomerang.base, dest.base, `l${n}`, p.rate, opts.seconds)) };
        bench.log(
          `  accepted ${fmt(r.acceptedPerS)}/s, pushed back ${fmt(r.pushedBackPerS)}/s, other failures ${r.otherStatus + r.resets + r.timeouts + r.otherErrors}, p50/p99 ${fmt(r.latencyMs.p50, 1)}/${fmt(r.latencyMs.p99, 1)} ms, deliveries during ${fmt(r.deliveredDuringPerS)}/s (sustained ${r.sustainedPerS === null ? "–" : fmt(r.sustainedPerS)}/s), backlog ${r.backlogAtEnd}, lost ${r.lost}, duplicated ${r.duplicates}`,
        );
        result.levels.push(r);
        await sleep(3_000);
      }
    },
    () => {
      if (result.levels.length) {
        result.markdown = markdown(result.levels, result);
        console.log(`\n${result.markdown}\n`);
      }
    },
  );
}

await main();
