#!/usr/bin/env node
// What does one message cost on Cloudflare? Counts the billed operations per delivered message with the server's
// meter (METER=true) and prices them at Cloudflare's published paid-plan rates, next to QStash.
//
// Starts its own destination (a Node server answering 200) and Boomerang (scripts/dev.mjs on a snapshot of the
// sources, fresh state, `--var METER:true --var ADMIN_SECRET:<random>`). For each scenario and run:
//   POST /admin/metrics/reset → publish N messages (closed loop, keep-alive) → wait until every one (and every
//   callback) reached the destination and the counters stopped moving → GET /admin/metrics.
// Scenarios: immediate publish; Upstash-Delay: 2s; Upstash-Callback (counted per source message, callback
// included); POST /v2/enqueue/<queue>/<url>.
//
// Pruning is inside each window: the server keeps finished messages for 1 s (LOG_RETENTION and DLQ_RETENTION) and
// runs no sweeps of its own (scripts/dev.mjs --sweep-every 0). Once a scenario's deliveries are in, the benchmark
// calls POST /admin/sweep until nothing is left to prune, so the counts cover a message's whole life: publish,
// every attempt, its log entries, and their deletion.
//
// Finally, an in-process Miniflare D1 (same local D1 as wrangler dev) replays the SQL of one immediate message's
// life to show which statement writes how many rows (D1 counts every index entry a write touches).
//
// Prints Markdown tables and writes bench/results/cost-<date>.json.
// Usage: node bench/cost.mjs [--count 500] [--runs 2] [--scenarios immediate,delayed,callback,enqueue] [--help]

import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { Bench, api, fmt, freePort, gitCommit, httpRequest, loadLoop, machineInfo, markdownTable, median, now, sleep, startDestination, TOKEN, waitFor, cliOptions } from "./lib.mjs";

/** Cloudflare paid-plan list prices (USD per million units) and QStash pay-as-you-go, as of PRICES_DATE. */
const PRICES_DATE = "2026-11-29";
const PRICES = {
  workersRequest: 0.3,
  d1RowWritten: 1.0,
  d1RowRead: 0.001,
  queueOperation: 0.4,
  doRequest: 0.15,
  qstashMessage: 10.0,
};
/** A queue message of ≤ 64 KB is billed as 3 operations: write, read, delete. */
const OPS_PER_QUEUE_MESSAGE = 3;
/** Goals over a delivered message's whole life, pruning included. */
const GOAL_ROWS_WRITTEN = 5;
const GOAL_DOLLARS_PER_MILLION = 5;
/** QStash's fixed 10M-per-day plan ($420 a month) at full use, per million messages. */
const QSTASH_10M_PER_DAY = 420 / 300;

const SCENARIOS = {
  immediate: { label: "Immediate publish", headers: () => ({}), callbacks: false, estimateS: (n) => n / 25 + 5 },
  delayed: { label: "Delayed publish (Upstash-Delay: 2s)", headers: () => ({ "Upstash-Delay": "2s" }), callbacks: false, estimateS: (n) => n / 25 + 8 },
  callback: { label: "Publish with a callback (callback included)", headers: null, callbacks: true, estimateS: (n) => n / 12 + 8 },
  enqueue: { label: "Enqueue (POST /v2/enqueue/<queue>/<url>)", headers: () => ({}), callbacks: false, estimateS: (n) => n / 15 + 8 },
};

const SPEC = {
  options: {
    count: { value: 500, min: 1, max: 100_000, help: "messages per scenario and run" },
    runs: { value: 2, min: 1, max: 10, help: "repetitions of every scenario (medians are reported)" },
    scenarios: { value: "immediate,delayed,callback,enqueue", text: true, help: "comma-separated subset of immediate, delayed, callback, enqueue" },
    concurrency: { value: 8, min: 1, max: 64, help: "publishes in flight" },
    "queue-parallelism": { value: 10, min: 1, max: 1000, help: "parallelism of the enqueue scenario's queue (created before the reset)" },
    drain: { value: 180, min: 10, max: 900, help: "seconds to wait for a scenario's deliveries" },
    "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
    server: { value: "wrangler", text: true, help: "how Boomerang is served: wrangler (npm run dev) or lean (npm start)" },
  },
  flags: {
    "no-rows": "skip the per-statement row accounting (in-process Miniflare D1)",
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};

const opts = cliOptions(SPEC, "cost.mjs");
const scenarioNames = opts.scenarios.split(",").map((s) => s.trim()).filter(Boolean);
for (const s of scenarioNames) {
  if (!(s in SCENARIOS)) {
    console.error(`unknown scenario "${s}"; choose from ${Object.keys(SCENARIOS).join(", ")}`);
    process.exit(1);
  }
}
const bench = new Bench("cost", opts);
const ADMIN_SECRET = randomBytes(24).toString("hex");

// ---------------------------------------------------------------------------------------------------------------
// Arrivals

/** key "<scenario>/<run>" → { deliveries: Set(path), callbacks: Set(path) } */
const arrivals = new Map();
let strays = 0;
let lastArrival = 0;

function bucket(key) {
  let b = arrivals.get(key);
  if (!b) {
    b = { deliveries: new Set(), callbacks: new Set(), duplicates: 0 };
    arrivals.set(key, b);
  }
  return b;
}

function onArrival(a) {
  const m = /^\/(c|cb)\/([^/]+\/[^/]+)\/(\d+)$/.exec(a.path);
  if (!m) {
    strays += 1;
    return;
  }
  lastArrival = a.at;
  const b = bucket(m[2]);
  const set = m[1] === "c" ? b.deliveries : b.callbacks;
  if (set.has(m[3])) b.duplicates += 1;
  else set.add(m[3]);
}

// ---------------------------------------------------------------------------------------------------------------
// The meter and the sweeper's schedule

let server;
let destBase = "";
let agent;

async function admin(method, pathname) {
  const r = await httpRequest({ url: server.base + pathname, method, headers: { authorization: `Bearer ${ADMIN_SECRET}` }, body: method === "POST" ? "" : undefined, agent });
  if (r.status !== 200) throw new Error(`${method} ${pathname} answered ${r.status}: ${r.body.slice(0, 300)}`);
  return JSON.parse(r.body);
}

const COUNTERS = ["d1Calls", "d1Statements", "d1RowsRead", "d1RowsWritten", "queueSends", "queueMessages", "doRequests"];

async function readMeter() {
  const m = await admin("GET", "/admin/metrics");
  if (m.metering !== true) throw new Error(`the server is not metering: ${JSON.stringify(m)}`);
  return Object.fromEntries(COUNTERS.map((k) => [k, Number(m[k] ?? 0)]));
}

/** Reads the meter until it has not moved for `quietMs` (flushes happen at the end of each handler). */
async function settledMeter(quietMs = 2000, maxMs = 30_000) {
  const t0 = now();
  let last = await readMeter();
  let since = now();
  for (;;) {
    bench.check();
    await sleep(400);
    const cur = await readMeter();
    if (COUNTERS.some((k) => cur[k] !== last[k])) {
      last = cur;
      since = now();
    } else if (now() - since >= quietMs && now() - lastArrival >= quietMs) {
      return cur;
    }
    if (now() - t0 > maxMs) {
      bench.warn(`the meter kept moving for ${maxMs / 1000} s; using its latest reading`);
      return cur;
    }
  }
}

/** Prunes everything the scenario left (retention is 1 s): sweeps until two in a row find nothing. */
async function pruneAll() {
  await sleep(1500);
  let quiet = 0;
  let pruned = 0;
  for (let i = 0; i < 200 && quiet < 2; i++) {
    const r = await admin("POST", "/admin/sweep");
    const n = r.prunedMessages + r.prunedDlq;
    pruned += n;
    quiet = n === 0 ? quiet + 1 : 0;
  }
  return pruned;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

async function runScenario(name, run, estimates) {
  const sc = SCENARIOS[name];
  const key = `${name}/${run}`;
  const b = bucket(key);
  const queueName = `bench-cost-${run}`;
  if (name === "enqueue") {
    await api(server.base, agent, "POST", "/v2/queues", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ queueName, parallelism: opts["queue-parallelism"] }),
    });
  }
  await admin("POST", "/admin/metrics/reset");
  const start = now();
  const accepted = new Set();
  const r = await loadLoop({
    makeRequest: (i) => {
      const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" };
      if (sc.callbacks) headers["Upstash-Callback"] = `${destBase}/cb/${key}/${i}`;
      else Object.assign(headers, sc.headers());
      const target = `${destBase}/c/${key}/${i}`;
      const url = name === "enqueue" ? `${server.base}/v2/enqueue/${queueName}/${target}` : `${server.base}/v2/publish/${target}`;
      return { url, method: "POST", headers, body: `cost ${key} ${i}` };
    },
    concurrency: opts.concurrency,
    durationMs: opts.drain * 1000,
    maxRequests: opts.count,
    isStopped: () => bench.interrupted,
    onResponse: (i) => accepted.add(String(i)),
  });
  if (r.failed) bench.warn(`  ${r.failed} publish(es) failed, e.g. ${r.errors[0]}`);
  const expectCallbacks = sc.callbacks ? accepted.size : 0;
  const outcome = await waitFor(bench, {
    done: () => b.deliveries.size >= accepted.size && b.callbacks.size >= expectCallbacks,
    progress: () => b.deliveries.size + b.callbacks.size,
    maxMs: opts.drain * 1000,
    stallMs: 60_000,
    describe: () => `  ${name}: delivered ${b.deliveries.size}/${accepted.size}${sc.callbacks ? `, callbacks ${b.callbacks.size}/${expectCallbacks}` : ""}`,
  });
  if (outcome !== "done") bench.warn(`  ${name}: only ${b.deliveries.size}/${accepted.size} deliveries and ${b.callbacks.size}/${expectCallbacks} callbacks (${outcome})`);
  await settledMeter();
  const prunedRows = await pruneAll();
  const totals = await settledMeter();
  const end = now();
  return {
    scenario: name,
    run,
    published: accepted.size,
    delivered: b.deliveries.size,
    callbacks: b.callbacks.size,
    duplicates: b.duplicates,
    seconds: Math.round((end - start) / 100) / 10,
    publishRps: r.rps,
    prunedRows,
    totals,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Money

/** Per-message counts (pruning included) and the cost of a million such messages, line by line. */
function perMessage(result) {
  const n = result.published || 1;
  return Object.fromEntries(COUNTERS.map((k) => [k, result.totals[k] / n]));
}

function dollarsPerMillion(per, scenario) {
  const lines = {
    workersPublish: 1 * PRICES.workersRequest,
    // Upper bound: one consumer invocation per queue message (a busy queue batches up to 10, i.e. a tenth of this).
    workersConsumer: per.queueMessages * PRICES.workersRequest,
    d1Written: per.d1RowsWritten * PRICES.d1RowWritten,
    d1Read: per.d1RowsRead * PRICES.d1RowRead,
    queue: per.queueMessages * OPS_PER_QUEUE_MESSAGE * PRICES.queueOperation,
    durableObjects: per.doRequests * PRICES.doRequest,
    // Not metered: each delayed message rings a Scheduler alarm (billed as a DO request); upper bound one per message.
    doAlarms: scenario === "delayed" ? 1 * PRICES.doRequest : 0,
  };
  const metered = lines.workersPublish + lines.d1Written + lines.d1Read + lines.queue + lines.durableObjects;
  return { lines, metered, withUpperBounds: metered + lines.workersConsumer + lines.doAlarms };
}

// ---------------------------------------------------------------------------------------------------------------
// Row accounting: the SQL of one immediate message's life, replayed on Miniflare's local D1

/**
 * Mirrors src/db/messages.ts (a publish writes its row, CREATED entry included, with the multi-row statement of
 * insertMessages; for one message it writes the same rows as this single-row form), src/delivery/consumer.ts and
 * the sweeper's pruning (src/db/retention.ts). Log entries are appended to the row's `log` by the same UPDATEs
 * (src/db/logs.ts appendLog).
 */
const ANCHOR = (time, moved) => `(CASE WHEN ${time} > anchor_at + 30000 THEN ${moved} ELSE anchor_at END)`;
/** Appends entries at `time`; with `firstAt`, the first one (an attempt's ACTIVE entry) at that earlier time. */
const APPEND = (time, entries, firstAt) => {
  const anchor = ANCHOR(time, firstAt === undefined ? time : `max(${firstAt}, ${time} - 30000)`);
  const pairs = entries.map((e, i) => `'$[#]', json_set(json('${e}'), '$.t', max(${i === 0 && firstAt !== undefined ? firstAt : time}, ${anchor}), '$.a', ${anchor})`);
  return `log = json_insert(log, ${pairs.join(", ")}), anchor_at = ${anchor}`;
};
const LIFE = [
  {
    step: "publish",
    what: "INSERT message row with its CREATED entry (insertMessages)",
    sql: `INSERT INTO messages (id, tenant_id, kind, parent_id, url, method, headers, body, max_retries, retry_delay_expr, timeout_ms,
      not_before, created_at, callback, failure_callback, callback_config, failure_callback_config, topic_name, endpoint_name, queue_name,
      schedule_id, caller_ip, labels, flow_control, extra, state, retried, due_at, held, redacted, body_ref, anchor_at, watch, log)
      VALUES ('msg_Vbench0000000000000000000', 'dev-default', 'message', NULL, 'http://127.0.0.1:9/x', 'POST', '{"Content-Type":["text/plain"]}', X'6869', 3, NULL, NULL,
      0, 1000, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '127.0.0.1', NULL, NULL, NULL, 'CREATED', 0, 1000, 0, NULL, NULL, 1000, 0,
      '[{"t":1000,"a":1000,"s":"CREATED"}]') ON CONFLICT (id) DO NOTHING`,
  },
  {
    step: "claim",
    what: "SELECT the due, idle rows and their signing keys (claimStatements, one per queue batch; only a re-driven row is leased by an UPDATE)",
    sql: `SELECT id, lease_until, length(log) AS log_bytes, (SELECT current_key FROM signing_keys k WHERE k.tenant_id = messages.tenant_id) AS signing_key
      FROM messages WHERE id IN (SELECT value FROM json_each('["msg_Vbench0000000000000000000"]')) AND finished_at IS NULL AND cancel_requested = 0
      AND held = 0 AND due_at <= 1001 + 1000 AND (lease_until IS NULL OR lease_until < 1001) AND redriven_at IS NULL`,
  },
  {
    step: "outcome",
    what: "UPDATE DELIVERED with its ACTIVE entry (at the claim's time) and its DELIVERED entry with the response (transition)",
    sql: `UPDATE messages SET state = 'DELIVERED', finished_at = 1002, lease_until = NULL, ${APPEND(1002, ['{"s":"ACTIVE"}', '{"s":"DELIVERED","c":200,"h":{"Content-Type":["text/plain"]},"b":"b2s="}'], 1001)}
      WHERE id = 'msg_Vbench0000000000000000000' AND lease_until IS NULL AND retried = 0 AND finished_at IS NULL RETURNING id`,
  },
  { step: "prune", what: "DELETE the message row, its log with it (retention)", sql: "DELETE FROM messages WHERE id IN (SELECT value FROM json_each('[\"msg_Vbench0000000000000000000\"]')) AND finished_at IS NOT NULL AND finished_at < 5000 AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = messages.id) RETURNING body_ref AS ref" },
];

function migrationStatements(appDir) {
  const dir = path.join(appDir, "migrations");
  const out = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".sql")).sort()) {
    const text = readFileSync(path.join(dir, f), "utf8")
      .split("\n")
      .map((l) => l.replace(/--.*$/, ""))
      .join("\n");
    // A trigger's body holds statements of its own: its parts are joined again up to its END.
    let pending = "";
    for (const part of text.split(";")) {
      pending = pending ? `${pending};${part}` : part;
      if (/CREATE\s+TRIGGER/i.test(pending) && !/\bEND\s*$/i.test(pending.trim())) continue;
      if (pending.trim()) out.push(pending.trim());
      pending = "";
    }
  }
  return out;
}

async function rowAccounting(appDir) {
  bench.log("row accounting: replaying one immediate message's SQL on an in-process Miniflare D1 …");
  const { Miniflare } = await import("miniflare");
  const mf = new Miniflare({
    modules: true,
    script: "export default { fetch() { return new Response('unused'); } };",
    compatibilityDate: "2026-04-20",
    d1Databases: ["DB"],
  });
  let disposed = false;
  const dispose = async () => {
    if (!disposed) {
      disposed = true;
      await mf.dispose();
    }
  };
  bench.onCleanup(dispose);
  try {
    const db = await mf.getD1Database("DB");
    for (const s of migrationStatements(appDir)) await db.prepare(s).run();
    await db.prepare("INSERT INTO tenants (id, name, created_at) VALUES ('dev-default', 'defaultUser', 1)").run();
    await db.prepare("INSERT INTO signing_keys (tenant_id, current_key, next_key, updated_at) VALUES ('dev-default', 'sig_a', 'sig_b', 1)").run();
    // One message already stored, so the statements see a populated table like a live database.
    await db.prepare("INSERT INTO messages (id, tenant_id, kind, url, method, headers, max_retries, not_before, created_at, state, due_at, anchor_at) VALUES ('msg_Vother', 'dev-default', 'message', 'http://127.0.0.1:9/x', 'POST', '{}', 0, 0, 1, 'CREATED', 1, 1)").run();
    const rows = [];
    // Each step is one D1 batch in src/ (the claim's event insert relies on changes() of the UPDATE before it).
    for (const step of [...new Set(LIFE.map((l) => l.step))]) {
      const group = LIFE.filter((l) => l.step === step);
      const results = await db.batch(group.map((l) => db.prepare(l.sql)));
      group.forEach((l, i) => {
        const meta = results[i].meta;
        rows.push({ step: l.step, what: l.what, rowsWritten: Number(meta.rows_written ?? 0), rowsRead: Number(meta.rows_read ?? 0) });
      });
    }
    const idx = await db.prepare("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('messages', 'log_marks') ORDER BY tbl_name, name").all();
    return { statements: rows, indexes: idx.results };
  } finally {
    await dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Report

function buildReport(results, rows) {
  const lines = [];
  const summary = {};
  for (const name of scenarioNames) {
    const mine = results.filter((r) => r.scenario === name);
    if (!mine.length) continue;
    const pers = mine.map((r) => perMessage(r));
    const per = Object.fromEntries(COUNTERS.map((k) => [k, median(pers.map((p) => p[k]))]));
    const money = dollarsPerMillion(per, name);
    summary[name] = { runs: mine.length, perMessage: per, perRun: pers, dollarsPerMillion: money, prunedRows: mine.map((r) => r.prunedRows) };
  }
  lines.push(`### Cost per message: ${opts.runs} run(s) × ${opts.count} messages per scenario, medians (prices as of ${PRICES_DATE})`);
  lines.push("");
  lines.push("Operations per source message over its whole life (pruning included), measured by the server's meter (worker + every Durable Object):");
  lines.push("");
  lines.push(
    markdownTable(
      ["Scenario", "D1 calls", "D1 statements", "D1 rows read", "D1 rows written", `goal ≤ ${GOAL_ROWS_WRITTEN} written`, "queue messages", "queue ops (×3)", "DO requests (metered)"],
      scenarioNames.filter((n) => summary[n]).map((n) => {
        const p = summary[n].perMessage;
        return [
          SCENARIOS[n].label,
          fmt(p.d1Calls, 2),
          fmt(p.d1Statements, 2),
          fmt(p.d1RowsRead, 2),
          fmt(p.d1RowsWritten, 2),
          // Two decimals: the sweeper's own bookkeeping (a cursor row per sweep, whatever the volume) is not per message.
          Math.round(p.d1RowsWritten * 100) / 100 <= GOAL_ROWS_WRITTEN ? "met" : `MISSED (${fmt(p.d1RowsWritten / GOAL_ROWS_WRITTEN, 2)}×)`,
          fmt(p.queueMessages, 2),
          fmt(p.queueMessages * OPS_PER_QUEUE_MESSAGE, 2),
          fmt(p.doRequests, 2),
        ];
      }),
    ),
  );
  lines.push("");
  lines.push("Dollars per million source messages at Cloudflare's paid-plan prices (free allowances, CPU/duration and storage ignored):");
  lines.push("");
  lines.push(
    markdownTable(
      ["Scenario", "Workers requests (publish)", "D1 rows written", "D1 rows read", "Queues", "DO requests", "**total (metered)**", `goal ≤ $${GOAL_DOLLARS_PER_MILLION}`, "+ consumer invocations (≤)", "+ DO alarms (≤)", "total with upper bounds", "QStash pay-as-you-go", "QStash 10M/day"],
      scenarioNames.filter((n) => summary[n]).map((n) => {
        const d = summary[n].dollarsPerMillion;
        const l = d.lines;
        return [
          SCENARIOS[n].label,
          `$${fmt(l.workersPublish, 2)}`,
          `$${fmt(l.d1Written, 2)}`,
          `$${fmt(l.d1Read, 4)}`,
          `$${fmt(l.queue, 2)}`,
          `$${fmt(l.durableObjects, 2)}`,
          `**$${fmt(d.metered, 2)}**`,
          d.metered <= GOAL_DOLLARS_PER_MILLION ? "met" : `MISSED (${fmt(d.metered / GOAL_DOLLARS_PER_MILLION, 2)}×)`,
          `$${fmt(l.workersConsumer, 2)}`,
          `$${fmt(l.doAlarms, 2)}`,
          `$${fmt(d.withUpperBounds, 2)}`,
          `$${fmt(PRICES.qstashMessage, 2)}`,
          `$${fmt(QSTASH_10M_PER_DAY, 2)}`,
        ];
      }),
    ),
  );
  lines.push("");
  if (rows) {
    lines.push("Where the rows written of one immediate message come from (its SQL replayed on Miniflare's local D1):");
    lines.push("");
    let totalW = 0;
    let totalR = 0;
    const body = rows.statements.map((s) => {
      totalW += s.rowsWritten;
      totalR += s.rowsRead;
      return [s.step, s.what, s.rowsWritten, s.rowsRead];
    });
    body.push(["", "**total**", `**${totalW}**`, `**${totalR}**`]);
    lines.push(markdownTable(["Step", "Statement", "rows written", "rows read"], body, ["l", "l", "r", "r"]));
    lines.push("");
    lines.push(`Indexes on messages / log_marks: ${rows.indexes.map((i) => `\`${i.name}\``).join(", ")} (plus each table's primary key).`);
    lines.push("");
  }
  const problems = results.filter((r) => r.delivered < r.published || (SCENARIOS[r.scenario].callbacks && r.callbacks < r.published));
  lines.push(`Scenarios with missing deliveries or callbacks: ${problems.length}; duplicates: ${results.reduce((s, r) => s + r.duplicates, 0)}; arrivals at unknown paths: ${strays}.`);
  return { markdown: lines.join("\n"), summary };
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const perRunS = scenarioNames.reduce((s, n) => s + SCENARIOS[n].estimateS(opts.count) + 20, 0);
  const estimateMin = 2 + (opts.runs * perRunS) / 60 + 1;
  const limit = opts["max-minutes"] || Math.ceil(estimateMin * 2.5 + 5);
  bench.setTimeLimit(limit);
  const machine = machineInfo();
  bench.log(`machine: ${machine.cpus} CPU(s), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; scenarios ${scenarioNames.join(", ")}; estimate ${estimateMin.toFixed(1)} min, hard limit ${limit} min`);
  const result = {
    benchmark: "cost",
    startedAt: new Date(bench.startedAt).toISOString(),
    finishedAt: null,
    complete: false,
    error: null,
    machine,
    options: { ...opts, scenarios: scenarioNames },
    prices: { date: PRICES_DATE, dollarsPerMillion: PRICES, opsPerQueueMessage: OPS_PER_QUEUE_MESSAGE },
    goal: { rowsWrittenPerMessage: GOAL_ROWS_WRITTEN, dollarsPerMillion: GOAL_DOLLARS_PER_MILLION },
    source: { commit: gitCommit(), snapshotFingerprint: null },
    sweep: null,
    rowAccounting: null,
    summary: null,
    markdown: null,
    results: [],
  };
  agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  bench.onCleanup(() => agent.destroy());
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      result.source.snapshotFingerprint = snap.fingerprint;
      const dest = await startDestination(bench, onArrival);
      destBase = dest.base;
      server = await bench.startBoomerang({
        appDir: snap.appDir,
        persistDir: path.join(bench.workDir, "state"),
        port: await freePort(),
        vars: { METER: "true", ADMIN_SECRET, LOG_RETENTION: "1s", DLQ_RETENTION: "1s" },
        devArgs: ["--sweep-every", "0"],
        lean: opts.server === "lean",
      });
      // Warm-up: every path once (dev tenants, Durable Objects, the consumer), not counted.
      bench.log("warm-up (not counted) …");
      const warm = bucket("warm/0");
      const warmPaths = [];
      for (let i = 0; i < 5; i++) warmPaths.push({ url: `/v2/publish/${destBase}/c/warm/0/${i}`, headers: {} });
      for (let i = 5; i < 8; i++) warmPaths.push({ url: `/v2/publish/${destBase}/c/warm/0/${i}`, headers: { "Upstash-Delay": "1s" } });
      for (let i = 8; i < 11; i++) warmPaths.push({ url: `/v2/publish/${destBase}/c/warm/0/${i}`, headers: { "Upstash-Callback": `${destBase}/cb/warm/0/${i}` } });
      for (let i = 11; i < 14; i++) warmPaths.push({ url: `/v2/enqueue/bench-warm/${destBase}/c/warm/0/${i}`, headers: {} });
      for (const w of warmPaths) await api(server.base, agent, "POST", w.url, { headers: { "content-type": "text/plain", ...w.headers }, body: "warm" });
      await waitFor(bench, { done: () => warm.deliveries.size >= warmPaths.length && warm.callbacks.size >= 3, progress: () => warm.deliveries.size + warm.callbacks.size, maxMs: 60_000 });
      await readMeter();
      await pruneAll();
      const estimates = new Map();
      for (let run = 1; run <= opts.runs; run++) {
        for (const name of scenarioNames) {
          bench.log(`run ${run}/${opts.runs}: ${SCENARIOS[name].label}, ${opts.count} messages …`);
          const r = await runScenario(name, run, estimates);
          result.results.push(r);
          const per = perMessage(r);
          bench.log(
            `  ${name}: ${r.published} published, ${r.delivered} delivered${SCENARIOS[name].callbacks ? `, ${r.callbacks} callbacks` : ""} in ${r.seconds} s` +
              `, ${fmt(r.prunedRows)} rows pruned; per message (pruning included): ${fmt(per.d1Statements, 2)} D1 statements, ` +
              `${fmt(per.d1RowsRead, 2)} rows read, ${fmt(per.d1RowsWritten, 2)} rows written, ${fmt(per.queueMessages, 2)} queue messages, ${fmt(per.doRequests, 2)} DO requests`,
          );
        }
      }
      await bench.stopGroup(server.pid);
      if (!opts["no-rows"]) result.rowAccounting = await rowAccounting(snap.appDir);
    },
    () => {
      if (result.results.length) {
        const report = buildReport(result.results, result.rowAccounting);
        result.summary = report.summary;
        result.markdown = report.markdown;
        console.log(`\n${report.markdown}\n`);
      }
    },
  );
}

await main();
