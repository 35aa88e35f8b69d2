#!/usr/bin/env node
// Does retention keep pace, and do publishes suffer while it runs?
//
// 1. Two fresh local states: "backlog", seeded with --rows expired messages (finished 31 days ago, past
//    LOG_RETENTION, with ids made at their creation times as real ones are; a message is one row, its log of 3
//    entries inside it), and "empty" (migrations only).
// 2. One Boomerang per state (scripts/dev.mjs on a snapshot of the sources, ADMIN_SECRET set, no sweeps of its own:
//    --sweep-every 0) and a local
//    destination answering 200.
// 3. Phases, one server at a time: empty, backlog, empty again. In each, a driver calls POST /admin/sweep back to
//    back (the cron trigger runs the same sweep once a minute; here it never pauses, the worst case for
//    publishers), while publishes go out open loop at --rate per second and each round trip is timed. A phase lasts
//    at least --seconds, and on the backlog until a sweep finds nothing left (at most --max-seconds).
// 4. Reports publish p50 / p99 per phase and the ratio backlog ÷ empty (goal: p99 within 20 %), and the rows pruned
//    (messages, plus DLQ entries) per second of sweeping. A deployment sweeps once a minute for at most 20 s, so it
//    prunes a third of that rate on average; the goal is the ~116 messages a second of 10 million messages a day.
// 5. Counts the expired messages left in the backlog state afterwards (none, when pruning kept pace).
//
// Writes bench/results/prune-<date>.json. Usage: node bench/prune.mjs [--rows 250000] [--rate 50] [--seconds 30]
// [--max-seconds 300] [--help]

import http from "node:http";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { checkServerOption, Bench, cliOptions, fmt, freePort, gitCommit, httpRequest, machineInfo, markdownTable, now, ratio, sleep, startDestination, summarize, TOKEN } from "./lib.mjs";

const TENANT = "dev-default";
const DAY = 86_400_000;
/** Messages a day the retention must keep up with, and what a cron sweep's budget leaves of the measured rate. */
const TARGET_PER_DAY = 10_000_000;
const SWEEP_SHARE = 20 / 60;
const GOAL_P99_RATIO = 1.2;

const SPEC = {
  options: {
    rows: { value: 250_000, min: 1, max: 20_000_000, help: "expired messages in the backlog (one row each, its log inside)" },
    rate: { value: 50, min: 1, max: 2000, help: "publishes per second during each phase (open loop)" },
    seconds: { value: 30, min: 5, max: 600, help: "shortest phase" },
    "max-seconds": { value: 300, min: 10, max: 3600, help: "longest phase (the backlog phase ends earlier once it is pruned)" },
    server: { value: "wrangler", text: true, help: "how Boomerang is served: wrangler (npm run dev) or lean (npm start: no dev proxy, less noise)" },
    chunk: { value: 250_000, min: 1000, max: 5_000_000, help: "messages per wrangler d1 execute while seeding" },
  },
  flags: {
    "keep-state": "keep the .wrangler/bench-* work directory (and its seeded states) afterwards",
    help: "show this help",
  },
};
const opts = cliOptions(SPEC, "prune.mjs", checkServerOption);
const bench = new Bench("prune", opts);
const secret = randomBytes(16).toString("hex");
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

async function sweepOnce(server) {
  const res = await httpRequest({
    url: `${server.base}/admin/sweep`,
    method: "POST",
    headers: { authorization: `Bearer ${secret}` },
    agent,
    timeoutMs: 120_000,
  });
  if (res.status !== 200) throw new Error(`POST /admin/sweep answered ${res.status}: ${res.body.slice(0, 300)}`);
  return JSON.parse(res.body);
}

/** One phase on one server: sweeps back to back and timed publishes, as described at the top. */
async function phase(server, label, destBase, { untilPruned }) {
  bench.log(`${label}: publishing ${opts.rate}/s while sweeping …`);
  const t0 = now();
  const latencies = [];
  /** [sent at, round trip ms] of each publish, to single out those sent while sweeps were still pruning. */
  const timed = [];
  let errors = 0;
  /** What the failed publishes got, by kind (they are left out of the latency figures, so they are shown here). */
  const errorKinds = new Map();
  let stop = false;
  const pruned = { messages: 0, dlq: 0, sweeps: 0, sweepMs: 0, lastEmptyAt: 0 };
  const sweeper = (async () => {
    while (!stop) {
      const s0 = now();
      const r = await sweepOnce(server);
      pruned.sweeps += 1;
      pruned.sweepMs += now() - s0;
      pruned.messages += r.prunedMessages;
      pruned.dlq += r.prunedDlq;
      if (r.prunedMessages + r.prunedDlq === 0) {
        pruned.lastEmptyAt ||= now();
        await sleep(250);
      }
    }
  })();
  const inflight = new Set();
  const interval = 1000 / opts.rate;
  let next = now();
  let lastLog = now();
  for (;;) {
    bench.check();
    const elapsed = now() - t0;
    const cleared = !untilPruned || pruned.lastEmptyAt > 0;
    if ((elapsed >= opts.seconds * 1000 && cleared) || elapsed >= opts["max-seconds"] * 1000) break;
    const sentAt = now();
    const p = httpRequest({ url: `${server.base}/v2/publish/${destBase}/prune-bench`, method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "x", agent })
      .then((r) => {
        if (r.status === 200) {
          latencies.push(r.ms);
          timed.push([sentAt, r.ms]);
        }
        else {
          errors += 1;
          const k = `HTTP ${r.status}: ${String(r.body).slice(0, 80)}`;
          errorKinds.set(k, (errorKinds.get(k) ?? 0) + 1);
        }
      })
      .catch((err) => {
        errors += 1;
        const k = String(err?.message ?? err).slice(0, 80);
        errorKinds.set(k, (errorKinds.get(k) ?? 0) + 1);
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
    if (now() - lastLog > 5000) {
      lastLog = now();
      bench.log(`${label}: ${((now() - t0) / 1000).toFixed(0)} s, ${fmt(latencies.length)} publishes, pruned ${fmt(pruned.messages)} messages + ${fmt(pruned.dlq)} DLQ entries in ${pruned.sweeps} sweeps`);
    }
    next += interval;
    await sleep(next - now());
  }
  stop = true;
  await Promise.all(inflight);
  await sweeper;
  const seconds = (now() - t0) / 1000;
  // A message is one row (its log is in it); DLQ entries are rows of their own.
  const rows = pruned.messages + pruned.dlq;
  const prunedUntil = pruned.lastEmptyAt || now();
  return {
    label,
    seconds: Math.round(seconds),
    publishes: latencies.length,
    errors,
    errorKinds: Object.fromEntries(errorKinds),
    latency: summarize(latencies),
    // While sweeps were still deleting rows (the whole phase when nothing was there to prune).
    pruningSeconds: Math.round((prunedUntil - t0) / 1000),
    latencyWhilePruning: untilPruned ? summarize(timed.filter(([at]) => at < prunedUntil).map(([, ms]) => ms)) : summarize(latencies),
    pruned,
    prunedRowsPerSweepSecond: pruned.sweepMs ? Math.round((rows * 1000) / pruned.sweepMs) : 0,
    prunedMessagesPerSweepSecond: pruned.sweepMs ? Math.round((pruned.messages * 1000) / pruned.sweepMs) : 0,
  };
}

function report(result) {
  const rows = result.phases.map((p) => [
    p.label,
    fmt(p.seconds),
    fmt(p.publishes),
    fmt(p.errors),
    fmt(p.latency.p50, 1),
    fmt(p.latency.p99, 1),
    `${fmt(p.latencyWhilePruning.p99, 1)} (${p.pruningSeconds} s)`,
    fmt(p.pruned.messages),
    fmt(p.pruned.dlq),
    fmt(p.prunedRowsPerSweepSecond),
  ]);
  const empties = result.phases.filter((p) => p.label.startsWith("empty"));
  const backlog = result.phases.find((p) => p.label === "backlog");
  const baseP99 = empties.reduce((s, p) => s + p.latency.p99, 0) / Math.max(1, empties.length);
  const needPerSecond = TARGET_PER_DAY / 86_400;
  const lines = [
    markdownTable(["phase", "s", "publishes", "errors", "publish p50 ms", "publish p99 ms", "p99 while pruning", "messages pruned", "DLQ entries pruned", "rows pruned / s of sweeping"], rows, ["l", "r", "r", "r", "r", "r", "r", "r", "r", "r"]),
  ];
  if (backlog && empties.length) {
    const r = ratio(backlog.latencyWhilePruning.p99, baseP99);
    const perSecond = backlog.prunedMessagesPerSweepSecond * SWEEP_SHARE;
    lines.push(
      "",
      `Publish p99 while the backlog was being pruned (the first ${backlog.pruningSeconds} s of its phase, ${fmt(backlog.latencyWhilePruning.n)} publishes): ${fmt(backlog.latencyWhilePruning.p99, 1)} ms; ÷ the mean p99 of the empty phases (${fmt(baseP99, 1)} ms): **${fmt(r, 2)}** (goal ≤ ${GOAL_P99_RATIO}).`,
      `Messages pruned per second of sweeping: ${fmt(backlog.prunedMessagesPerSweepSecond)}, so about ${fmt(perSecond)} per second on a deployment that sweeps 20 s a minute; 10 million a day need ${fmt(needPerSecond)} (goal met: ${perSecond >= needPerSecond ? "yes" : "no"}).`,
    );
    result.summary = { p99Ratio: r, messagesPrunedPerSecondDeployed: Math.round(perSecond), needed: Math.round(needPerSecond) };
  }
  // Failed publishes are not in the latency figures: say what they were.
  for (const p of result.phases) {
    for (const [kind, n] of Object.entries(p.errorKinds ?? {})) lines.push(`${p.label}: ${fmt(n)} publish(es) failed: ${kind}`);
  }
  result.markdown = lines.join("\n");
  console.log(`\n${result.markdown}\n`);
}

async function main() {
  const machine = machineInfo();
  const estimateMin = Math.ceil(opts.rows / 40_000 / 60 + (opts.seconds * 2 + opts["max-seconds"]) / 60 + 3);
  bench.setTimeLimit(estimateMin * 3 + 5);
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}; backlog ${fmt(opts.rows)} expired messages; ${opts.rate} publishes/s; estimate up to ${estimateMin} min`);
  const result = {
    benchmark: "prune",
    startedAt: new Date(bench.startedAt).toISOString(),
    finishedAt: null,
    complete: false,
    error: null,
    machine,
    options: opts,
    goal: { p99Ratio: GOAL_P99_RATIO, messagesPerDay: TARGET_PER_DAY },
    source: { commit: gitCommit(), snapshotFingerprint: null },
    states: [],
    phases: [],
    summary: null,
    markdown: null,
  };
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      result.source.snapshotFingerprint = snap.fingerprint;
      const messages = opts.rows;
      const backlogDir = path.join(bench.workDir, "state-backlog");
      // Created 31 days ago, one every 5 ms, with ids made then: all finished long before LOG_RETENTION (14 d) and
      // DLQ_RETENTION (30 d), and all below the first id pruning keeps (made at the retention cutoff).
      const seeded = await bench.seedFinished({ appDir: snap.appDir, persistDir: backlogDir, size: messages, chunk: opts.chunk, tenant: TENANT, t0: now() - 31 * DAY, stepMs: 5, label: "backlog" });
      result.states.push({ name: "backlog", messages, rows: messages, ...seeded });
      const emptyDir = path.join(bench.workDir, "state-empty");
      result.states.push({ name: "empty", messages: 0, rows: 0, ...(await bench.seedFinished({ appDir: snap.appDir, persistDir: emptyDir, size: 0, chunk: opts.chunk, tenant: TENANT, t0: now(), stepMs: 1, label: "empty" })) });
      const dest = await startDestination(bench, () => {});
      // No push-back on delivery lag (npm start turns it on): every publish is timed, none refused.
      const vars = { ADMIN_SECRET: secret, MAX_QUEUE_LAG: "off" };
      // The servers run no sweeps of their own (--sweep-every 0): only the phases' drivers sweep.
      const devArgs = ["--sweep-every", "0"];
      const lean = opts.server === "lean";
      const empty = await bench.startBoomerang({ appDir: snap.appDir, persistDir: emptyDir, port: await freePort(), vars, devArgs, label: "Boomerang (empty)", lean });
      const backlog = await bench.startBoomerang({ appDir: snap.appDir, persistDir: backlogDir, port: await freePort(), vars, devArgs, label: "Boomerang (backlog)", lean });
      result.phases.push(await phase(empty, "empty", dest.base, { untilPruned: false }));
      result.phases.push(await phase(backlog, "backlog", dest.base, { untilPruned: true }));
      result.phases.push(await phase(empty, "empty (again)", dest.base, { untilPruned: false }));
      await empty.stop();
      await backlog.stop();
      // Seeded ids have "seed" right after the 7 characters of their time (bench/lib.mjs seedMessageId).
      const left = await bench.d1Command(
        snap.appDir,
        backlogDir,
        "SELECT (SELECT count(*) FROM messages WHERE finished_at < strftime('%s','now') * 1000 - 14 * 86400000) AS expired, " +
          "(SELECT count(*) FROM messages WHERE substr(id, 12, 4) = 'seed') AS seeded",
      );
      result.expiredLeft = Number(left[0]?.results?.[0]?.expired ?? -1);
      result.seededLeft = Number(left[0]?.results?.[0]?.seeded ?? -1);
      bench.log(`expired messages left in the backlog state: ${fmt(result.expiredLeft)} (seeded messages left: ${fmt(result.seededLeft)} of ${fmt(messages)})`);
    },
    () => report(result),
  );
}

await main();
