#!/usr/bin/env node
// Does Boomerang slow down as its tables grow? Publish latency and throughput with 1K, 100K and 1M stored messages.
//
// 1. For each size N (servers stopped): applies the D1 migrations to a fresh local state and seeds it with
//    `wrangler d1 execute DB --local --persist-to <dir> --file <seed.sql>`: N finished messages (tenant
//    dev-default, state DELIVERED, finished_at set, created over the last 6 hours) and 3 log events each
//    (CREATED, ACTIVE, DELIVERED), inserted by a recursive CTE in chunks (progress printed).
// 2. Prints EXPLAIN QUERY PLAN for the hot-path queries on the largest state and flags every SCAN of
//    messages / events.
// 3. Starts one Boomerang per size (scripts/dev.mjs on a snapshot of the sources, each on its own seeded state)
//    and measures them in interleaved rounds (the order rotates each round), so that drift in the machine's load
//    touches every size alike:
//      - publish round trip and publish → delivery, sequential (one message at a time),
//      - publish throughput at a fixed concurrency (closed loop, keep-alive), then waits for the deliveries,
//      - GET /v2/logs (first page, newest first) and, as the worst case, GET /v2/logs filtered by a URL that
//        matches nothing (walks every log entry of the tenant).
// 4. Reports medians per size and the ratios largest ÷ smallest (goal: latency ratio ≤ 1.2, i.e. at most 20 %
//    slower; throughput smallest ÷ largest ≤ 1.2). Writes bench/results/growth-<date>.json.
//
// Usage: node bench/growth.mjs [--sizes 1000,100000,1000000] [--runs 3] [--help]

import http from "node:http";
import path from "node:path";
import { Bench, api, describeError, fmt, freePort, gitCommit, httpRequest, loadLoop, machineInfo, markdownTable, median, now, cpuSample, otherCores, ratio, startDestination, summarize, TOKEN, waitFor, cliOptions } from "./lib.mjs";

const GOAL_RATIO = 1.2;
const TENANT = "dev-default";
/** Seeded messages are spread over this window before the run (inside every retention period). */
const SEED_WINDOW_MS = 6 * 3600_000;

const SPEC = {
  options: {
    sizes: { value: [1000, 100_000, 1_000_000], list: true, min: 0, max: 20_000_000, help: "stored messages per state (3 log events each)" },
    runs: { value: 5, min: 1, max: 10, help: "measurement rounds (each measures every size once; medians are reported)" },
    "latency-count": { value: 100, min: 1, max: 5000, help: "sequential publishes per size and round" },
    concurrency: { value: 8, min: 1, max: 256, help: "connections for the throughput point" },
    seconds: { value: 5, min: 1, max: 60, help: "seconds per throughput point" },
    "logs-count": { value: 20, min: 0, max: 1000, help: "GET /v2/logs requests per size and round (0 skips)" },
    "scan-count": { value: 2, min: 0, max: 100, help: "GET /v2/logs?url=<no match> requests per size and round (0 skips)" },
    chunk: { value: 250_000, min: 1000, max: 5_000_000, help: "messages per wrangler d1 execute while seeding" },
    drain: { value: 120, min: 5, max: 900, help: "seconds to wait for the deliveries of a throughput point" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
  },
  flags: {
    "no-explain": "skip the EXPLAIN QUERY PLAN section",
    "keep-state": "keep the .wrangler/bench-* work directory (and its seeded states) afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "growth.mjs");
const sizes = [...new Set(opts.sizes)].sort((a, b) => a - b);
const bench = new Bench("growth", opts);

// ---------------------------------------------------------------------------------------------------------------
// Seeding (the servers are not running)

async function prepareState(appDir, size) {
  const persistDir = path.join(bench.workDir, `state-${size}`);
  // Finished messages spread over the seed window, ending a minute ago: all inside every retention period.
  const t0 = now() - SEED_WINDOW_MS - 60_000;
  const stepMs = Math.max(1, Math.floor(SEED_WINDOW_MS / Math.max(1, size)));
  return { size, ...(await bench.seedFinished({ appDir, persistDir, size, chunk: opts.chunk, tenant: TENANT, t0, stepMs, label: `size ${fmt(size)}` })) };
}

// ---------------------------------------------------------------------------------------------------------------
// EXPLAIN QUERY PLAN of the hot-path queries (same SQL as src/, parameters replaced by literals)

const ID = "'msg_seed000000000000000042'";
const QUERIES = [
  { name: "token lookup (every API call; cached 10 s per isolate)", source: "src/db/tenants.ts lookupToken", sql: "SELECT token_hash, tenant_id, read_only FROM tokens WHERE token_hash = 'x'" },
  {
    name: "consumer: claim a batch (UPDATE … ACTIVE … RETURNING with the signing key)",
    source: "src/delivery/consumer.ts claim",
    sql: `UPDATE messages SET state = 'ACTIVE', lease_until = 2 + COALESCE(timeout_ms, 900000) + 30000 WHERE id IN (SELECT value FROM json_each('[${ID.replace(/'/g, '"')}]')) AND finished_at IS NULL AND cancel_requested = 0 AND held = 0 AND due_at <= 2 + 1000 AND (lease_until IS NULL OR lease_until < 2) RETURNING *, (SELECT current_key FROM signing_keys k WHERE k.tenant_id = messages.tenant_id) AS signing_key`,
  },
  {
    name: "consumer: the claim's ACTIVE events",
    source: "src/delivery/consumer.ts claim",
    sql: `INSERT INTO events (tenant_id, message_id, time, state) SELECT tenant_id, id, 2, 'ACTIVE' FROM messages WHERE id IN (SELECT value FROM json_each('[${ID.replace(/'/g, '"')}]')) AND state = 'ACTIVE' AND lease_until = 2 + COALESCE(timeout_ms, 900000) + 30000`,
  },
  {
    name: "consumer: load an unclaimed message with its signing key",
    source: "src/db/messages.ts loadForDelivery (settleUnclaimed)",
    sql: `SELECT m.*, k.current_key AS signing_key FROM messages m JOIN signing_keys k ON k.tenant_id = m.tenant_id WHERE m.id = ${ID}`,
  },
  {
    name: "outcome: DELIVERED",
    source: "src/delivery/consumer.ts recordOutcome",
    sql: `UPDATE messages SET state = 'DELIVERED', finished_at = 1, lease_until = NULL WHERE id = ${ID}`,
  },
  {
    name: "outcome: RETRY",
    source: "src/delivery/consumer.ts recordOutcome",
    sql: `UPDATE messages SET state = 'RETRY', retried = retried + 1, due_at = 1, lease_until = NULL WHERE id = ${ID}`,
  },
  {
    name: "outcome: FAILED / CANCELED",
    source: "src/delivery/consumer.ts finishStatements",
    sql: `UPDATE messages SET state = 'FAILED', finished_at = 1, lease_until = NULL WHERE id = ${ID}`,
  },
  { name: "outcome: cancel check after a failed attempt", source: "src/delivery/consumer.ts recordOutcome", sql: `SELECT cancel_requested FROM messages WHERE id = ${ID}` },
  {
    name: "after a queued message ends: open children",
    source: "src/delivery/consumer.ts afterTerminal",
    sql: `SELECT p.tenant_id, p.queue_name, p.finished_at, (SELECT count(*) FROM messages c WHERE c.parent_id = p.id AND c.finished_at IS NULL) AS open_children FROM messages p WHERE p.id = ${ID}`,
  },
  {
    name: "sweeper: overdue unfinished messages",
    source: "src/delivery/sweeper.ts sweep",
    sql: "SELECT id FROM messages WHERE finished_at IS NULL AND held = 0 AND due_at < 1 AND (lease_until IS NULL OR lease_until < 2) AND (redriven_at IS NULL OR redriven_at < 1) ORDER BY due_at LIMIT 1000",
  },
  {
    name: "sweeper: held messages long past due",
    source: "src/delivery/sweeper.ts sweep",
    sql: "SELECT * FROM messages WHERE finished_at IS NULL AND held = 1 AND due_at < 1 ORDER BY due_at LIMIT 500",
  },
  {
    name: "sweeper: prune events (oldest 5000 by seq)",
    source: "src/delivery/sweeper.ts sweep",
    sql: "DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, time FROM events ORDER BY seq LIMIT 5000) WHERE time < 1)",
  },
  {
    name: "sweeper: prune finished messages",
    source: "src/delivery/sweeper.ts sweep",
    sql: "DELETE FROM messages WHERE id IN (SELECT id FROM messages m WHERE finished_at IS NOT NULL AND finished_at < 1 AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = m.id) LIMIT 5000)",
  },
  {
    name: "logs: first page, tenant filter (GET /v2/logs)",
    source: "src/db/events.ts listEvents",
    sql:
      "SELECT e.seq AS e_seq, e.tenant_id AS e_tenant_id, e.message_id AS e_message_id, e.time AS e_time, e.state AS e_state, e.error AS e_error, " +
      "e.next_delivery_time AS e_next_delivery_time, e.response_status AS e_response_status, e.response_headers AS e_response_headers, " +
      "e.response_body AS e_response_body, m.* FROM events e JOIN messages m ON m.id = e.message_id WHERE e.tenant_id = 'dev-default' ORDER BY e.seq DESC LIMIT 101",
  },
  {
    name: "logs: tenant + messageId filter",
    source: "src/db/events.ts listEvents",
    sql: `SELECT e.seq, m.id FROM events e JOIN messages m ON m.id = e.message_id WHERE e.tenant_id = 'dev-default' AND e.message_id IN (${ID}) ORDER BY e.seq DESC LIMIT 101`,
  },
  {
    name: "logs: tenant + url filter",
    source: "src/db/events.ts listEvents + src/db/where.ts",
    sql: "SELECT e.seq, m.id FROM events e JOIN messages m ON m.id = e.message_id WHERE e.tenant_id = 'dev-default' AND m.url IN ('http://nowhere.invalid/') ORDER BY e.seq DESC LIMIT 101",
  },
  { name: "GET /v2/messages/{id}", source: "src/db/messages.ts getMessage", sql: `SELECT * FROM messages WHERE id = ${ID} AND tenant_id = 'dev-default'` },
  { name: "dedup lookup (with a deduplication id)", source: "src/delivery/publish.ts earlierResponse", sql: "SELECT response FROM dedup WHERE tenant_id = 'dev-default' AND id = 'x' AND expires_at > 1" },
];

/**
 * A plan line that reads a growing table row by row: SCAN of messages / events (or their aliases m, p, c, e), and
 * of the DLQ (alias d), which grows with failures.
 */
function isBigScan(detail) {
  return /^SCAN (messages|events|dlq|m|p|c|e|d)\b/.test(detail);
}

async function explainAll(appDir, persistDir) {
  bench.log(`EXPLAIN QUERY PLAN of ${QUERIES.length} hot-path queries …`);
  // One wrangler invocation for all of them (each one costs seconds of start-up); one by one if that fails.
  let results = null;
  try {
    results = await bench.d1Command(appDir, persistDir, QUERIES.map((q) => `EXPLAIN QUERY PLAN ${q.sql}`).join(";\n"));
    if (!Array.isArray(results) || results.length !== QUERIES.length) results = null;
  } catch (err) {
    bench.warn(`EXPLAIN in one batch failed (${describeError(err)}); trying the queries one by one`);
  }
  const out = [];
  for (let i = 0; i < QUERIES.length; i++) {
    const q = QUERIES[i];
    bench.check();
    try {
      const res = results ? [results[i]] : await bench.d1Command(appDir, persistDir, `EXPLAIN QUERY PLAN ${q.sql}`);
      const rows = res[0]?.results ?? [];
      const plan = rows.map((r) => String(r.detail ?? ""));
      const scans = plan.filter(isBigScan);
      out.push({ ...q, plan, scans });
      bench.log(`plan: ${q.name}: ${plan.join(" | ") || "(no table access)"}${scans.length ? "   <<< SCAN" : ""}`);
    } catch (err) {
      out.push({ ...q, plan: [], scans: [], error: describeError(err) });
      bench.warn(`EXPLAIN failed for ${q.name}: ${describeError(err)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring a running server

/** path → arrival entry */
const expected = new Map();
/** Throughput points: key → message ids delivered. */
const tpDelivered = new Map();
let strays = 0;
let destBase = "";
/** Process groups of the servers (their CPU is not "other processes"). */
const allPgids = [];

function onArrival(a) {
  const tp = /^\/g\/tp\/([^/]+)\//.exec(a.path);
  if (tp) {
    const set = tpDelivered.get(tp[1]) ?? new Set();
    set.add(a.messageId);
    tpDelivered.set(tp[1], set);
    return;
  }
  const e = expected.get(a.path);
  if (!e) {
    strays += 1;
    return;
  }
  if (e.at === null) {
    e.at = a.at;
    e.resolve();
  }
}

async function publishAndWait(server, agent, tag) {
  const pathname = `/g/lat/${tag}`;
  let resolve = () => {};
  const promise = new Promise((r) => (resolve = r));
  const entry = { at: null, resolve };
  expected.set(pathname, entry);
  const start = now();
  const t0 = performance.now();
  await api(server.base, agent, "POST", `/v2/publish/${destBase}${pathname}`, { headers: { "content-type": "text/plain" }, body: `growth ${tag}` });
  const publishMs = performance.now() - t0;
  let timer;
  await Promise.race([promise, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
  clearTimeout(timer);
  expected.delete(pathname);
  return { publishMs, deliveryMs: entry.at === null ? null : entry.at - start };
}

async function timedGets(server, agent, pathname, count, timeoutMs) {
  const ms = [];
  for (let i = 0; i < count; i++) {
    bench.check();
    const r = await httpRequest({ url: server.base + pathname, headers: { authorization: `Bearer ${TOKEN}` }, agent, timeoutMs });
    if (r.status !== 200) throw new Error(`GET ${pathname} answered ${r.status}: ${r.body.slice(0, 200)}`);
    ms.push(r.ms);
  }
  return summarize(ms);
}

async function measureSize(server, round) {
  const label = `round ${round}, size ${fmt(server.size)}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const cpu0 = cpuSample(allPgids);
  try {
    const publish = [];
    const delivery = [];
    let missing = 0;
    for (let i = 0; i < opts["latency-count"]; i++) {
      bench.check();
      const r = await publishAndWait(server, agent, `${server.size}/${round}/${i}`);
      publish.push(r.publishMs);
      if (r.deliveryMs === null) missing += 1;
      else delivery.push(r.deliveryMs);
    }
    const key = `${server.size}-${round}`;
    const accepted = new Set();
    const tp = await loadLoop({
      makeRequest: (i) => ({
        url: `${server.base}/v2/publish/${destBase}/g/tp/${key}/${i}`,
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" },
        body: `growth throughput ${key} ${i}`,
      }),
      concurrency: opts.concurrency,
      durationMs: opts.seconds * 1000,
      maxRequests: 100_000,
      isStopped: () => bench.interrupted,
      onResponse: (_i, res) => {
        try {
          accepted.add(JSON.parse(res.body).messageId);
        } catch {
          // not JSON: ignored
        }
      },
    });
    const delivered = () => tpDelivered.get(key)?.size ?? 0;
    const outcome = await waitFor(bench, {
      done: () => delivered() >= accepted.size,
      progress: delivered,
      maxMs: opts.drain * 1000,
      stallMs: 50_000,
      describe: () => `${label}: waiting for deliveries ${delivered()}/${accepted.size}`,
    });
    if (outcome !== "done") bench.warn(`${label}: only ${delivered()}/${accepted.size} throughput deliveries arrived (${outcome})`);
    const logs = opts["logs-count"] ? await timedGets(server, agent, "/v2/logs", opts["logs-count"], 60_000) : null;
    const scan = opts["scan-count"] ? await timedGets(server, agent, `/v2/logs?url=${encodeURIComponent("http://nowhere.invalid/")}`, opts["scan-count"], 120_000) : null;
    const m = {
      size: server.size,
      round,
      publish: summarize(publish),
      delivery: summarize(delivery),
      missingDeliveries: missing + Math.max(0, accepted.size - delivered()),
      throughputRps: tp.rps,
      throughputFailed: tp.failed,
      throughputLatency: tp.latencyMs,
      logs,
      scan,
      otherCores: otherCores(cpu0, cpuSample(allPgids)),
    };
    bench.log(
      `${label}: publish p50 ${fmt(m.publish.p50, 1)} / p99 ${fmt(m.publish.p99, 1)} ms, delivery p50 ${fmt(m.delivery.p50)} ms, ` +
        `${fmt(tp.rps, 1)} publishes/s at c=${opts.concurrency}, logs p50 ${fmt(logs?.p50, 1)} ms, url-filtered logs p50 ${fmt(scan?.p50)} ms; ` +
        `other processes used ${fmt(m.otherCores, 2)} cores`,
    );
    return m;
  } finally {
    agent.destroy();
  }
}

async function warmUp(server) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  try {
    await api(server.base, agent, "GET", "/v2/keys");
    for (let i = 0; i < 20; i++) await publishAndWait(server, agent, `${server.size}/warm/${i}`);
    await timedGets(server, agent, "/v2/logs", 3, 60_000);
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

function summarizeSizes(rounds) {
  return sizes.map((size) => {
    const mine = rounds.filter((r) => r.size === size);
    const med = (f) => median(mine.map(f));
    return {
      size,
      rounds: mine.length,
      publishP50: med((r) => r.publish.p50),
      publishP99: med((r) => r.publish.p99),
      deliveryP50: med((r) => r.delivery.p50),
      deliveryP99: med((r) => r.delivery.p99),
      throughputRps: med((r) => r.throughputRps),
      logsP50: med((r) => r.logs?.p50 ?? null),
      scanP50: med((r) => r.scan?.p50 ?? null),
      missing: mine.reduce((s, r) => s + r.missingDeliveries, 0),
      otherCores: med((r) => r.otherCores),
    };
  });
}

function buildMarkdown(rows, states, explain, result) {
  const lines = [];
  const small = rows[0];
  const big = rows[rows.length - 1];
  const largestState = states.length ? states[states.length - 1].size : 0;
  lines.push(`### Growth: ${opts.runs} round(s); per size and round ${opts["latency-count"]} sequential publishes + ${opts.seconds} s at c=${opts.concurrency}; medians`);
  lines.push("");
  if (rows.length) lines.push(
    markdownTable(
      ["Stored messages (events)", "publish p50 ms", "publish p99 ms", "publish → delivery p50 ms", "publishes/s", "GET /v2/logs p50 ms", "logs, no-match url filter p50 ms", "seed s", "state MiB", "other cores"],
      rows.map((r) => {
        const st = states.find((s) => s.size === r.size);
        return [
          `${fmt(r.size)} (${fmt(r.size * 3)})`,
          fmt(r.publishP50, 1),
          fmt(r.publishP99, 1),
          fmt(r.deliveryP50, 1),
          fmt(r.throughputRps, 1),
          fmt(r.logsP50, 1),
          fmt(r.scanP50, 0),
          fmt(st?.seedSeconds, 1),
          fmt((st?.diskBytes ?? 0) / 2 ** 20),
          fmt(r.otherCores, 2),
        ];
      }),
    ),
  );
  lines.push("");
  if (rows.length >= 2) {
    const r = (a, b) => ratio(a, b);
    const checks = [
      ["publish p50", r(big.publishP50, small.publishP50)],
      ["publish p99", r(big.publishP99, small.publishP99)],
      ["publish → delivery p50", r(big.deliveryP50, small.deliveryP50)],
      ["throughput (smallest ÷ largest)", r(small.throughputRps, big.throughputRps)],
      ["GET /v2/logs p50", r(big.logsP50, small.logsP50)],
    ];
    lines.push(`Ratios ${fmt(big.size)} ÷ ${fmt(small.size)} (goal ≤ ${GOAL_RATIO}):`);
    lines.push("");
    lines.push(markdownTable(["Metric", "ratio", "goal"], checks.map(([name, v]) => [name, fmt(v, 2), v === null ? "–" : v <= GOAL_RATIO ? "met" : "MISSED"])));
    lines.push("");
    lines.push(`Worst case (not a goal): logs filtered by a URL nothing matches, ${fmt(big.size)} ÷ ${fmt(small.size)} = ${fmt(r(big.scanP50, small.scanP50), 1)}.`);
    lines.push("");
  }
  if (explain.length) {
    lines.push(`EXPLAIN QUERY PLAN on the ${fmt(largestState)}-message state (SCAN of messages/events flagged):`);
    lines.push("");
    lines.push(markdownTable(["Query", "source", "plan", "big-table SCAN"], explain.map((q) => [q.name, `\`${q.source}\``, q.error ? `error: ${q.error}` : q.plan.join("; ") || "(no table access)", q.scans.length ? `**${q.scans.join("; ")}**` : "no"]), ["l", "l", "l", "l"]));
    lines.push("");
  }
  const missing = rows.reduce((s, r) => s + r.missing, 0);
  lines.push(`Deliveries that never arrived: ${missing}; arrivals at unknown paths: ${strays}.`);
  lines.push(`Machine: ${result.machine.cpus} CPU(s), ${result.machine.cpuModel}, node ${result.machine.node}; load average at start ${result.machine.loadAverageAtStart.join(" ")}.`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const totalMessages = sizes.reduce((s, n) => s + n, 0);
  const seedMin = (totalMessages / 40_000 + sizes.length * 10) / 60;
  const measureMin = (opts.runs * sizes.length * (opts["latency-count"] * 0.08 + opts.seconds + 20 + opts["scan-count"] * 3)) / 60;
  const estimateMin = 1 + seedMin + measureMin + sizes.length * 0.5;
  const limit = opts["max-minutes"] || Math.ceil(estimateMin * 2.5 + 5);
  bench.setTimeLimit(limit);
  const machine = machineInfo();
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; sizes ${sizes.map((s) => fmt(s)).join(", ")}; estimate ${estimateMin.toFixed(1)} min, hard limit ${limit} min`);
  if (machine.loadAverageAtStart[0] >= machine.cpus) bench.warn("the load average is at or above the CPU count: other work on this machine will skew the numbers");
  const result = {
    benchmark: "growth",
    startedAt: new Date(bench.startedAt).toISOString(),
    finishedAt: null,
    complete: false,
    error: null,
    machine,
    options: { ...opts, sizes },
    goal: { ratio: GOAL_RATIO },
    source: { commit: gitCommit(), snapshotFingerprint: null },
    servedBy: "wrangler dev (scripts/dev.mjs --quiet), one server per size, all running during the rounds",
    states: [],
    explain: [],
    summary: null,
    markdown: null,
    rounds: [],
  };
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      result.source.snapshotFingerprint = snap.fingerprint;
      for (const size of sizes) result.states.push(await prepareState(snap.appDir, size));
      if (!opts["no-explain"]) result.explain = await explainAll(snap.appDir, result.states[result.states.length - 1].persistDir);
      const dest = await startDestination(bench, onArrival);
      destBase = dest.base;
      const servers = [];
      for (const st of result.states) {
        const s = await bench.startBoomerang({ appDir: snap.appDir, persistDir: st.persistDir, port: await freePort(), label: `Boomerang (${fmt(st.size)} messages)` });
        servers.push({ ...s, size: st.size });
        allPgids.push(s.pid);
      }
      for (const s of servers) {
        bench.log(`warm-up of the ${fmt(s.size)}-message server (not counted) …`);
        await warmUp(s);
      }
      for (let round = 1; round <= opts.runs; round++) {
        // Rotate the order so that no size always goes first (or last).
        const order = servers.map((_, i) => servers[(i + round - 1) % servers.length]);
        bench.log(`round ${round}/${opts.runs}: ${order.map((s) => fmt(s.size)).join(" → ")}`);
        for (const s of order) result.rounds.push(await measureSize(s, round));
      }
    },
    () => {
      if (result.rounds.length) {
        const rows = summarizeSizes(result.rounds);
        result.summary = rows;
        result.markdown = buildMarkdown(rows, result.states, result.explain, result);
        console.log(`\n${result.markdown}\n`);
      } else if (result.explain.length) {
        result.markdown = buildMarkdown([], result.states, result.explain, result);
      }
    },
  );
}

await main();
