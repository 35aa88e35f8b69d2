#!/usr/bin/env node
// Boomerang next to Quirrel 1.14.1 (on a local redis-server with AOF everysec) and a bare "hello" worker, the
// same load against each, in one run. Boomerang is served as `npm start` serves it (lean); the hello worker with
// Miniflare's API; Quirrel by its production server (bench/quirrel.mjs installs it and Redis when missing).
//
// Per run, one peer at a time (never two under load at once), each against the same local destination:
//   1. accept: a closed loop of 32 keep-alive connections for --seconds in all: accepted publishes/s (the bare
//      worker: GET / answered/s), deliveries/s while the load lasts, and the backlog when it stops (then every
//      accepted message must arrive: lost and duplicated are counted). Both peers' accept phases come first in a
//      run, one right after the other, so that their ratio sees as little of the machine's drift as can be. With
//      --slices N, each peer's seconds are cut into N slices taken in turn (Boomerang, Quirrel, Quirrel, Boomerang,
//      …; the other way round in every other run), each drained before the next. Slices share the drift better but
//      are shorter, and each peer then works right after the other's load (bench/README.md, 2026-12-04: one run of
//      three with 2 slices had Boomerang at 0.48×, using 0.71 cores). Every slice waits for a quiet machine first
//      (less than 0.3 cores busy, at most 30 s): work one peer defers past its load (a Redis AOF rewrite, say) is
//      then not measured as the next peer's;
//   2. steady: --steady messages/s for --steady-seconds, open loop: publish → delivery p50 / p99;
//   3. delayed: the same with each message delayed 2 s: delivery after its due time (sent + 2 s) p50 / p99.
// Reports each run's ratios, medians over --runs, the ratios Boomerang ÷ Quirrel, and a Markdown table.
//
// Usage: node bench/peers.mjs [--runs 3] [--seconds 10] [--slices 1] [--steady 50] [--steady-seconds 10] [--help]

import path from "node:path";
import { Bench, TOKEN, cliOptions, fmt, freePort, gitCommit, groupCpuSeconds, httpRequest, keepAliveAgent, loadLoop, machineInfo, markdownTable, median, startDestination, summarize, waitForQuiet } from "./lib.mjs";
import { QUIRREL_VERSION, startQuirrel } from "./quirrel.mjs";
import { servedOn } from "../scripts/lean.mjs";

const SPEC = {
  options: {
    runs: { value: 3, min: 1, max: 10, help: "repetitions (medians are reported)" },
    seconds: { value: 10, min: 2, max: 120, help: "seconds of the closed-loop accept phase, per peer and run" },
    slices: { value: 1, min: 1, max: 20, help: "slices the accept phase is cut into per peer, the peers' slices taken in turn" },
    steady: { value: 50, min: 1, max: 1000, help: "messages/s of the latency phases" },
    "steady-seconds": { value: 10, min: 2, max: 120, help: "seconds of each latency phase" },
    drain: { value: 180, min: 10, max: 900, help: "seconds to wait for a phase's deliveries" },
    "quirrel-dir": { value: "/tmp/bench-quirrel-1.14.1", text: true, help: "where Quirrel is installed (once)" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
  },
  flags: {
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "peers.mjs");
const bench = new Bench("peers", opts);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CONCURRENCY = 32;

/** Arrivals by phase (the path's first segment): when each message index (the body) arrived, and how often. */
const arrivals = new Map();
function onArrival({ at, path: p, body }) {
  const key = p.split("/")[1] ?? "";
  let a = arrivals.get(key);
  if (!a) arrivals.set(key, (a = { times: [], first: new Map(), dup: 0 }));
  a.times.push(at);
  const index = body.toString("utf8");
  if (a.first.has(index)) a.dup++;
  else a.first.set(index, at);
}
const arrivalsOf = (key) => arrivals.get(key) ?? { times: [], first: new Map(), dup: 0 };

/** How each peer is asked to publish message `index` (body = the index) to `url`, and what answer means accepted. */
function boomerangPeer(base) {
  return {
    name: "Boomerang",
    accepted: (status) => status === 200,
    request: (url, index, delayMs) => ({
      url: `${base}/v2/publish/${url}`,
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain", ...(delayMs ? { "upstash-delay": `${delayMs / 1000}s` } : {}) },
      body: String(index),
    }),
  };
}

function quirrelPeer(q) {
  return {
    name: `Quirrel ${QUIRREL_VERSION}`,
    accepted: (status) => status === 201,
    request: (url, index, delayMs) => ({
      url: `${q.base}/queues/${encodeURIComponent(url)}`,
      method: "POST",
      headers: { authorization: `Bearer ${q.token}`, "content-type": "application/json" },
      body: JSON.stringify(delayMs ? { body: String(index), delay: delayMs } : { body: String(index) }),
    }),
  };
}

/** Waits until every accepted index of `key` arrived (or the drain time is up); returns how many never did. */
async function drain(key, accepted) {
  const until = Date.now() + opts.drain * 1000;
  let last = -1;
  for (;;) {
    const got = accepted.filter((i) => arrivalsOf(key).first.has(String(i))).length;
    if (got === accepted.length || Date.now() > until) return accepted.length - got;
    if (got !== last) bench.log(`    waiting for deliveries: ${got}/${accepted.length}`);
    last = got;
    await sleep(1000);
  }
}

/** One slice of the accept phase: a closed loop of CONCURRENCY connections for `seconds`, then its deliveries drained. */
async function acceptSlice(peer, destBase, key, seconds) {
  // The index of each accepted publish is known from its request, sent in order.
  const acceptedIdx = [];
  const agent = keepAliveAgent({ maxSockets: CONCURRENCY });
  let next = 0;
  const t0 = Date.now();
  const deadline = t0 + seconds * 1000;
  const statuses = {};
  const cpuBefore = groupCpuSeconds(peer.groups);
  const worker = async () => {
    while (Date.now() < deadline) {
      const i = next++;
      try {
        const r = await httpRequest({ ...peer.request(`${destBase}/${key}`, i, 0), agent });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (peer.accepted(r.status)) acceptedIdx.push(i);
      } catch (err) {
        statuses.error = (statuses.error ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const loadEnd = Date.now();
  const cpuAfter = groupCpuSeconds(peer.groups);
  agent.destroy();
  const deliveredDuring = arrivalsOf(key).times.filter((t) => t <= loadEnd).length;
  const lost = await drain(key, acceptedIdx);
  return {
    seconds: (loadEnd - t0) / 1000,
    accepted: acceptedIdx.length,
    deliveredDuring,
    backlogAtEnd: Math.max(0, acceptedIdx.length - deliveredDuring),
    drainS: (arrivalsOf(key).times.reduce((m, t) => Math.max(m, t), loadEnd) - loadEnd) / 1000,
    lost,
    duplicated: arrivalsOf(key).dup,
    statuses,
    // What the messages cost the server's processes, whatever their number: CPU time over the load.
    cpuS: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore,
  };
}

/** A peer's accept figures over its slices of one run: rates over all their seconds, the worst backlog. */
function acceptOf(slices) {
  const sum = (k) => slices.reduce((n, x) => n + x[k], 0);
  const seconds = sum("seconds");
  const accepted = sum("accepted");
  const cpuS = slices.some((x) => x.cpuS === null) ? null : sum("cpuS");
  const statuses = {};
  for (const x of slices) for (const [k, v] of Object.entries(x.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  return {
    acceptedPerS: accepted / seconds,
    deliveredDuringPerS: sum("deliveredDuring") / seconds,
    backlogAtEnd: Math.max(...slices.map((x) => x.backlogAtEnd)),
    drainS: Math.max(...slices.map((x) => x.drainS)),
    lost: sum("lost"),
    duplicated: sum("duplicated"),
    statuses,
    coresBusy: cpuS === null ? null : cpuS / seconds,
    cpuMsPerMessage: cpuS === null || accepted === 0 ? null : (cpuS * 1000) / accepted,
    slices: slices.map((x) => ({ seconds: x.seconds, accepted: x.accepted, acceptedPerS: x.accepted / x.seconds })),
  };
}

/**
 * The accept phase of one run, both peers: `opts.slices` slices each, in turn, starting with `first`
 * (A B B A A B …). Returns each peer's figures.
 */
async function acceptPhase(peers, destBase, run, first) {
  const second = first === "boomerang" ? "quirrel" : "boomerang";
  const slices = { boomerang: [], quirrel: [] };
  const seconds = opts.seconds / opts.slices;
  for (let n = 1; n <= opts.slices; n++) {
    for (const name of n % 2 ? [first, second] : [second, first]) {
      // Each slice starts on a quiet machine: what the other peer defers past its load is not measured here.
      const quiet = await waitForQuiet();
      if (quiet.waitedS > 1.5) bench.log(`  waited ${quiet.waitedS.toFixed(1)} s for the machine to be quiet (${fmt(quiet.cores, 2)} cores busy)`);
      const x = await acceptSlice(peers[name], destBase, `${name}-r${run}-a${n}`, seconds);
      slices[name].push(x);
      bench.log(`  ${peers[name].name}, slice ${n}/${opts.slices}: ${fmt(x.accepted / x.seconds)} accepted/s, backlog ${x.backlogAtEnd}, lost ${x.lost}`);
    }
  }
  const out = {};
  for (const name of ["boomerang", "quirrel"]) {
    const accept = acceptOf(slices[name]);
    out[name] = accept;
    bench.log(
      `  ${peers[name].name}: accepted ${fmt(accept.acceptedPerS)}/s (${JSON.stringify(accept.statuses)}), deliveries during ${fmt(accept.deliveredDuringPerS)}/s, backlog ≤ ${fmt(accept.backlogAtEnd)} (drained in ≤ ${accept.drainS.toFixed(1)} s), lost ${accept.lost}, duplicated ${accept.duplicated}; CPU ${fmt(accept.coresBusy, 2)} cores, ${fmt(accept.cpuMsPerMessage, 2)} ms per message`,
    );
  }
  bench.log(
    `  run ${run}, Boomerang ÷ Quirrel: accepted ${fmt(out.boomerang.acceptedPerS / out.quirrel.acceptedPerS, 2)}×, deliveries during the load ${fmt(out.boomerang.deliveredDuringPerS / out.quirrel.deliveredDuringPerS, 2)}×`,
  );
  return out;
}

/** The latency phases of one peer: steady open loop, immediate then delayed 2 s. */
async function latencyOf(peer, destBase, run) {
  const key = `${peer.name.split(" ")[0].toLowerCase()}-r${run}`;
  const latency = {};
  for (const delayMs of [0, 2000]) {
    const phase = `${key}-${delayMs ? "d" : "s"}`;
    const sentAt = new Map();
    const acceptedIdx2 = [];
    const agent2 = keepAliveAgent({ maxSockets: 64 });
    const total = opts.steady * opts["steady-seconds"];
    const start = performance.now();
    const inFlight = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / opts.steady;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      sentAt.set(String(i), Date.now());
      inFlight.push(
        httpRequest({ ...peer.request(`${destBase}/${phase}`, i, delayMs), agent: agent2 })
          .then((r) => peer.accepted(r.status) && acceptedIdx2.push(i))
          .catch(() => undefined),
      );
    }
    await Promise.all(inFlight);
    agent2.destroy();
    const lost2 = await drain(phase, acceptedIdx2);
    const lags = [...arrivalsOf(phase).first].map(([i, at]) => at - sentAt.get(i) - delayMs);
    latency[delayMs ? "delayed" : "immediate"] = { ...summarize(lags), accepted: acceptedIdx2.length, lost: lost2 };
    const s = latency[delayMs ? "delayed" : "immediate"];
    bench.log(`  ${peer.name}: ${delayMs ? "after the due time of 2 s delays" : "publish → delivery"} at ${opts.steady}/s: p50 ${fmt(s.p50, 1)} ms, p99 ${fmt(s.p99, 1)} ms (${s.n} delivered, lost ${lost2})`);
    await sleep(1000);
  }
  return latency;
}

function table(result) {
  const pick = (peer, f) => median(result.runs.map((r) => f(r[peer])).filter((v) => v !== null && v !== undefined));
  const rows = [
    ["accepted publishes/s, 32 connections, closed loop", (x) => x.accept.acceptedPerS, true],
    ["deliveries/s during that load", (x) => x.accept.deliveredDuringPerS, true],
    ["backlog when the load stops (messages, the most of a run's slices)", (x) => x.accept.backlogAtEnd, false],
    ["server CPU during that load, cores busy", (x) => x.accept.coresBusy, null],
    ["server CPU per accepted and delivered message, ms", (x) => x.accept.cpuMsPerMessage, false],
    [`publish → delivery p50 ms, ${opts.steady}/s`, (x) => x.latency.immediate.p50, false],
    [`publish → delivery p99 ms, ${opts.steady}/s`, (x) => x.latency.immediate.p99, false],
    [`after the due time of a 2 s delay, p50 ms`, (x) => x.latency.delayed.p50, false],
    [`after the due time of a 2 s delay, p99 ms`, (x) => x.latency.delayed.p99, false],
  ];
  const out = rows.map(([label, f, higherBetter]) => {
    const q = pick("quirrel", f);
    const b = pick("boomerang", f);
    const ratio = q && b !== null ? b / q : null;
    const digits = Math.abs(q ?? 0) < 10 && Math.abs(b ?? 0) < 10 ? 2 : 1;
    const note = higherBetter === null ? "" : higherBetter ? "" : " (lower is better)";
    return [label, fmt(q, digits), fmt(b, digits), ratio === null ? "–" : `${ratio.toFixed(2)}×${note}`];
  });
  const bare = median(result.runs.map((r) => r.bare));
  const perRun = (f) => result.runs.map((r) => `${(f(r.boomerang) / f(r.quirrel)).toFixed(2)}×`).join(", ");
  const lines = [
    `### Side by side, ${opts.runs} run(s), medians (${new Date().toISOString().slice(0, 10)}, ${result.source.commit})`,
    "",
    markdownTable(["metric", `Quirrel ${QUIRREL_VERSION} (Redis 7, AOF everysec)`, "Boomerang (npm start)", "Boomerang ÷ Quirrel"], out, ["l", "r", "r", "r"]),
    "",
    `Each run's Boomerang ÷ Quirrel (${opts.slices} slice(s) of ${fmt(opts.seconds / opts.slices, 1)} s per peer, taken in turn): accepted ${perRun((x) => x.accept.acceptedPerS)}; deliveries during the load ${perRun((x) => x.accept.deliveredDuringPerS)}.`,
    `Bare hello worker (Miniflare, GET /, same 32 connections): ${fmt(bare)} answers/s; Boomerang's accept rate is ${fmt(pick("boomerang", (x) => x.accept.acceptedPerS) / bare, 2)} of it.`,
    `Lost: Boomerang ${result.runs.reduce((n, r) => n + r.boomerang.accept.lost + r.boomerang.latency.immediate.lost + r.boomerang.latency.delayed.lost, 0)}, Quirrel ${result.runs.reduce((n, r) => n + r.quirrel.accept.lost + r.quirrel.latency.immediate.lost + r.quirrel.latency.delayed.lost, 0)}; duplicated: Boomerang ${result.runs.reduce((n, r) => n + r.boomerang.accept.duplicated, 0)}, Quirrel ${result.runs.reduce((n, r) => n + r.quirrel.accept.duplicated, 0)}.`,
    `Machine: ${result.machine.cpus} CPU(s), node ${result.machine.node}; load average at start ${result.machine.loadAverageAtStart.join(" ")}.`,
  ];
  return lines.join("\n");
}

async function main() {
  // Each slice may also wait up to 30 s for a quiet machine (waitForQuiet).
  const perRun = 2 * (opts.seconds + 2 * opts["steady-seconds"] + 30 + 33 * opts.slices) + opts.seconds + 10;
  const limit = opts["max-minutes"] || Math.ceil(6 + (opts.runs * perRun) / 60 + (opts.runs * opts.drain) / 60);
  bench.setTimeLimit(limit);
  const machine = machineInfo();
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; hard limit ${limit} min`);
  const result = { benchmark: "peers", startedAt: new Date(bench.startedAt).toISOString(), machine, options: { ...opts }, source: { commit: gitCommit() }, runs: [], markdown: null };
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      const dest = await startDestination(bench, onArrival);
      const hello = await bench.startMiniflare({
        label: "the hello worker",
        options: { name: "bench-hello", modules: true, scriptPath: path.join(snap.appDir, "bench", "hello", "index.js"), compatibilityDate: "2026-04-20", ...servedOn("127.0.0.1", await freePort()) },
      });
      const boomerang = await bench.startBoomerang({ appDir: snap.appDir, persistDir: path.join(bench.workDir, "state"), port: await freePort(), lean: true });
      const q = await startQuirrel({ dir: opts["quirrel-dir"], workDir: bench.workDir, log: (m) => bench.log(m), rateLimitMax: 100_000_000 });
      bench.onCleanup(() => q.stop());
      const peers = { boomerang: { ...boomerangPeer(boomerang.base), groups: [boomerang.pid] }, quirrel: { ...quirrelPeer(q), groups: q.pids } };
      bench.log("warm-up: 200 publishes to each …");
      for (const peer of Object.values(peers)) {
        for (let i = 0; i < 200; i++) await httpRequest(peer.request(`${dest.base}/warm`, i, 0));
      }
      await sleep(3000);
      for (let run = 1; run <= opts.runs; run++) {
        bench.log(`run ${run}/${opts.runs}:`);
        const bare = await loadLoop({ makeRequest: () => ({ url: `${hello.base}/`, method: "GET" }), concurrency: CONCURRENCY, durationMs: opts.seconds * 1000, maxRequests: 10_000_000 });
        bench.log(`  bare hello worker: ${fmt(bare.rps)} answers/s`);
        // Alternate which peer goes first, so neither always runs on the warmer machine.
        const order = run % 2 ? ["boomerang", "quirrel"] : ["quirrel", "boomerang"];
        const accept = await acceptPhase(peers, dest.base, run, order[0]);
        await sleep(2000);
        const r = { run, bare: bare.rps };
        for (const name of order) r[name] = { accept: accept[name], latency: await latencyOf(peers[name], dest.base, run) };
        result.runs.push(r);
      }
    },
    () => {
      if (result.runs.length) {
        result.markdown = table(result);
        console.log(`\n${result.markdown}\n`);
      }
    },
  );
}

await main();
