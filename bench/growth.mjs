#!/usr/bin/env node
// Does Boomerang slow down as its tables grow? Publish latency and throughput with 1K, 100K and 1M stored messages.
//
// 1. For each size N (servers stopped): applies the D1 migrations to a fresh local state and seeds it with
//    `wrangler d1 execute DB --local --persist-to <dir> --file <seed.sql>`: N finished messages (tenant
//    dev-default, state DELIVERED, finished_at set, created over the last 6 hours, ids made at their creation
//    times), each one row with its log of 3 entries (CREATED, ACTIVE, DELIVERED) inside, inserted by a recursive
//    CTE in chunks (progress printed).
// 2. Prints EXPLAIN QUERY PLAN for the hot-path queries on the largest state and flags every SCAN of
//    messages / log_marks / dlq, and every search of messages_tenant by tenant alone (all of a tenant's messages).
// 3. Starts one Boomerang per size (scripts/dev.mjs on a snapshot of the sources, each on its own seeded state)
//    and measures them in interleaved rounds (the order rotates each round), so that drift in the machine's load
//    touches every size alike:
//      - publish round trip and publish → delivery, sequential (one message at a time),
//      - publish throughput at a fixed concurrency (closed loop, keep-alive), then waits for the deliveries,
//      - GET /v2/logs (first page, newest first) and, as the worst case, GET /v2/logs filtered by a URL that
//        matches nothing (reads every message of the tenant in the retention window, through messages_tenant).
// 4. Reports medians per size and the ratios largest ÷ smallest (goal: latency ratio ≤ 1.2, i.e. at most 20 %
//    slower; throughput smallest ÷ largest ≤ 1.2). Writes bench/results/growth-<date>.json.
//
// Usage: node bench/growth.mjs [--sizes 1000,100000,1000000] [--runs 3] [--help]

import http from "node:http";
import path from "node:path";
import { Bench, api, describeError, fmt, freePort, gitCommit, httpRequest, loadLoop, machineInfo, markdownTable, median, now, cpuSample, otherCores, ratio, seedMessageId, startDestination, summarize, timeChars, TOKEN, waitFor, cliOptions } from "./lib.mjs";

const GOAL_RATIO = 1.2;
const TENANT = "dev-default";
/** Seeded messages are spread over this window before the run (inside every retention period). */
const SEED_WINDOW_MS = 6 * 3600_000;

const SPEC = {
  options: {
    sizes: { value: [1000, 100_000, 1_000_000], list: true, min: 0, max: 20_000_000, help: "stored messages per state (3 log entries each, in its row)" },
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
  return { size, t0, stepMs, ...(await bench.seedFinished({ appDir, persistDir, size, chunk: opts.chunk, tenant: TENANT, t0, stepMs, label: `size ${fmt(size)}` })) };
}

// ---------------------------------------------------------------------------------------------------------------
// EXPLAIN QUERY PLAN of the hot-path queries (same SQL as src/, parameters replaced by literals)

/** Every column of a message but its log (src/db/messages.ts MESSAGE_COLUMNS). */
const MESSAGE_COLUMNS = `id, tenant_id, kind, parent_id, url, method, headers, body, max_retries, retry_delay_expr, timeout_ms, not_before,
  created_at, callback, failure_callback, callback_config, failure_callback_config, topic_name, endpoint_name, queue_name, schedule_id,
  caller_ip, labels, flow_control, extra, state, retried, due_at, held, redacted, body_ref, lease_until, cancel_requested, finished_at, redriven_at`;
/** A row as deliveries read it (src/db/messages.ts ROW and ROW_OF). */
const ROW = `${MESSAGE_COLUMNS}, length(log) AS log_bytes`;
const ROW_OF = (alias) => `${MESSAGE_COLUMNS.split(",").map((c) => `${alias}.${c.trim()}`).join(", ")}, length(${alias}.log) AS log_bytes`;
/** SET clauses that append log entries at `time` (src/db/logs.ts appendLog, LOG_WINDOW_MS 30 s). */
function appendLog(time, entries) {
  const anchor = `(CASE WHEN ${time} > anchor_at + 30000 THEN ${time} ELSE anchor_at END)`;
  const pairs = entries.map((e) => `'$[#]', json_set(json(${e}), '$.t', max(${time}, anchor_at), '$.a', ${anchor})`).join(", ");
  return `log = json_insert(log, ${pairs}), anchor_at = ${anchor}`;
}
/** The light form of a row's log entries with anchor `anchor` (null: all), as the logs API reads them (src/db/logs.ts lightEntries). */
function lightEntries(anchor) {
  return `(SELECT json_group_array(json_object('i', l.key, 't', l.value ->> '$.t', 's', l.value ->> '$.s',
      'z', coalesce(length(l.value ->> '$.b') * 3 / 4, length(l.value ->> '$.x') / 2, 0), 'r', (l.value ->> '$.r') IS NOT NULL))
    FROM json_each(m.log) l${anchor ? ` WHERE l.value ->> '$.a' = ${anchor}` : ""})`;
}
/** The SQL expression of the R2 keys a message row refers to (src/db/retention.ts ROW_REFS). */
const ROW_REFS = `(SELECT json_group_array(l.value ->> '$.r') FROM json_each(log) l WHERE l.value ->> '$.r' IS NOT NULL)`;
/** One anchor query of the logs API (src/db/logs.ts anchorStream): newest first, from `after` when given. */
function anchorQuery(kind, { after = null, extra = "" } = {}) {
  const [timeCol, idCol, from, tenantCol] =
    kind === "created"
      ? ["m.created_at", "m.id", "messages m", "m.tenant_id"]
      : ["k.time", "k.message_id", "log_marks k JOIN messages m ON m.id = k.message_id", "k.tenant_id"];
  const where = [`${tenantCol} = 'dev-default'`, `${timeCol} >= 1`, `${timeCol} <= 9007199254740991`];
  if (after) where.push(`(${timeCol}, ${idCol}) < (${after.anchor}, '${after.id}')`);
  if (extra) where.push(extra);
  return `SELECT m.id AS id, ${timeCol} AS anchor, coalesce(length(m.body), 0) AS bz, m.body_ref IS NOT NULL AS br, ${lightEntries(timeCol)} AS light
    FROM ${from} WHERE ${where.join(" AND ")} ORDER BY ${timeCol} DESC, ${idCol} DESC LIMIT 250`;
}

/**
 * The hot-path queries, with `id` (a seeded message's id, quoted) and `created` (its creation time) where src binds
 * a message id. `id` must look like a real id (time first): the pruning and sweeper walks go by id ranges.
 */
function hotQueries(id, created) {
  const raw = id.slice(1, -1);
  const ids = `'["${raw}"]'`;
  // A retention cutoff just after the seeded message, and the first id made at it (src/core/ids.ts idFloor).
  const before = created + 1000;
  const ceiling = `'msg_${timeChars(before)}'`;
  return [
    {
      name: "token lookup (every API call; cached 10 s per isolate)",
      source: "src/db/tenants.ts lookupToken",
      sql: "SELECT k.token_hash, k.tenant_id, k.read_only, t.shard FROM tokens k JOIN tenants t ON t.id = k.tenant_id WHERE k.token_hash = 'x'",
    },
    {
      name: "consumer: claim a batch (UPDATE … ACTIVE, ACTIVE entry appended … RETURNING with the signing key)",
      source: "src/db/messages.ts claimStatements",
      sql: `UPDATE messages SET state = 'ACTIVE', lease_until = 2 + COALESCE(timeout_ms, 900000) + 30000, redriven_at = NULL, ${appendLog("2", [`'{"s":"ACTIVE"}'`])}
         WHERE id IN (SELECT value FROM json_each(${ids})) AND finished_at IS NULL AND cancel_requested = 0 AND held = 0
           AND due_at <= 2 + 1000 AND (lease_until IS NULL OR lease_until < 2)
         RETURNING ${ROW}, (SELECT current_key FROM signing_keys k WHERE k.tenant_id = messages.tenant_id) AS signing_key`,
    },
    {
      name: "runner: load the leased rows of a batch with their signing keys",
      source: "src/db/messages.ts loadLeased",
      sql: `SELECT ${ROW_OF("m")}, k.current_key AS signing_key FROM messages m JOIN signing_keys k ON k.tenant_id = m.tenant_id
        WHERE m.finished_at IS NULL AND (m.id, m.lease_until) IN (SELECT value ->> '$.id', value ->> '$.leaseUntil' FROM json_each('[{"id":"${raw}","leaseUntil":2}]'))`,
    },
    {
      name: "consumer: load an unclaimed message with its signing key",
      source: "src/db/messages.ts loadForDelivery (settleUnclaimed)",
      sql: `SELECT ${ROW_OF("m")}, k.current_key AS signing_key FROM messages m JOIN signing_keys k ON k.tenant_id = m.tenant_id WHERE m.id = ${id}`,
    },
    {
      name: "outcome: DELIVERED (entry appended)",
      source: "src/db/messages.ts transition",
      sql: `UPDATE messages SET state = 'DELIVERED', finished_at = 3, lease_until = NULL, ${appendLog("3", ["'{\"s\":\"DELIVERED\",\"c\":200}'"])} WHERE id = ${id} AND lease_until IS 2 AND finished_at IS NULL RETURNING id`,
    },
    {
      name: "outcome: RETRY (ERROR and RETRY entries appended, watched)",
      source: "src/db/messages.ts transition",
      sql: `UPDATE messages SET state = 'RETRY', retried = retried + 1, due_at = 4, lease_until = NULL, watch = 1, ${appendLog("3", ["'{\"s\":\"ERROR\",\"c\":500}'", "'{\"s\":\"RETRY\",\"n\":4}'"])} WHERE id = ${id} AND lease_until IS 2 AND finished_at IS NULL RETURNING id`,
    },
    {
      name: "outcome: FAILED / CANCELED (entry appended)",
      source: "src/db/messages.ts transition",
      sql: `UPDATE messages SET state = 'FAILED', finished_at = 3, lease_until = NULL, ${appendLog("3", ["'{\"s\":\"FAILED\",\"c\":500}'"])} WHERE id = ${id} AND lease_until IS 2 AND finished_at IS NULL RETURNING id`,
    },
    { name: "outcome: cancel check after a failed attempt", source: "src/db/messages.ts cancelRequested", sql: `SELECT cancel_requested FROM messages WHERE id = ${id}` },
    {
      name: "after a queued message ends: open children",
      source: "src/db/messages.ts queuedSourceState",
      sql: `SELECT p.tenant_id, p.queue_name, p.finished_at, (SELECT count(*) FROM messages c WHERE c.parent_id = p.id AND c.finished_at IS NULL) AS open_children FROM messages p WHERE p.id = ${id}`,
    },
    {
      name: "sweeper: walk over recent ids (unfinished, not watched)",
      source: "src/db/sweeps.ts watchWalk",
      sql: `SELECT id, (finished_at IS NULL AND watch = 0) AS straggler FROM messages WHERE id > '' AND id < ${ceiling} ORDER BY id LIMIT 5000`,
    },
    {
      name: "sweeper: overdue watched messages",
      source: "src/db/sweeps.ts redriveCandidates",
      sql: "SELECT id FROM messages WHERE finished_at IS NULL AND watch = 1 AND held = 0 AND due_at < 1 AND (lease_until IS NULL OR lease_until < 2) AND (redriven_at IS NULL OR redriven_at < 1) ORDER BY due_at LIMIT 1000",
    },
    {
      name: "sweeper: held messages long past due, oldest per gate",
      source: "src/db/sweeps.ts heldWork",
      sql: `SELECT m.id, m.tenant_id, m.due_at, m.queue_name, m.flow_control,
        (m.queue_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.tenant_id = m.tenant_id AND q.name = m.queue_name)) AS queue_gone
        FROM (SELECT *, row_number() OVER (PARTITION BY tenant_id, queue_name, json_extract(flow_control, '$.key') ORDER BY due_at, id) AS rank
          FROM messages WHERE finished_at IS NULL AND watch = 1 AND held = 1 AND due_at < 1) m
        WHERE m.rank <= 100`,
    },
    {
      name: "sweeper: held messages long past due, the walk over all",
      source: "src/db/sweeps.ts heldWork",
      sql: `SELECT m.id, m.tenant_id, m.due_at, m.queue_name, m.flow_control,
        (m.queue_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.tenant_id = m.tenant_id AND q.name = m.queue_name)) AS queue_gone
        FROM messages m WHERE m.finished_at IS NULL AND m.watch = 1 AND m.held = 1 AND m.due_at < 1
          AND (m.due_at, m.id) > (-1, '') ORDER BY m.due_at, m.id LIMIT 500`,
    },
    {
      name: "sweeper: prune walk (ids below the retention cutoff)",
      source: "src/db/retention.ts pruneWalk",
      sql: `SELECT m.id, (m.finished_at IS NOT NULL AND m.finished_at < ${before} AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = m.id)) AS expired
        FROM messages m WHERE m.id > '' AND m.id < ${ceiling} ORDER BY m.id LIMIT 1000`,
    },
    {
      name: "sweeper: delete the expired messages of a walk step",
      source: "src/db/retention.ts deleteExpired",
      sql: `DELETE FROM messages WHERE id IN (SELECT value FROM json_each(${ids})) AND finished_at IS NOT NULL AND finished_at < ${before}
        AND NOT EXISTS (SELECT 1 FROM dlq d WHERE d.message_id = messages.id)
        RETURNING body_ref AS ref, ${ROW_REFS} AS refs`,
    },
    {
      name: "sweeper: a deleted message's log marks (trigger)",
      source: "migrations/0011_message_logs.sql messages_log_marks_delete",
      sql: `DELETE FROM log_marks WHERE tenant_id = 'dev-default' AND message_id = ${id} AND time IN (SELECT DISTINCT value ->> '$.a' FROM json_each('[{"a":${created}}]'))`,
    },
    {
      name: "sweeper: prune DLQ entries",
      source: "src/db/retention.ts pruneDlq",
      sql: "DELETE FROM dlq WHERE seq IN (SELECT seq FROM dlq WHERE created_at < 1 LIMIT 1000) RETURNING response_body_ref AS ref",
    },
    {
      name: "logs: creation anchors, first chunk (GET /v2/logs)",
      source: "src/db/logs.ts anchorStream (created)",
      sql: anchorQuery("created"),
    },
    {
      name: "logs: creation anchors, next chunk",
      source: "src/db/logs.ts anchorStream (created)",
      sql: anchorQuery("created", { after: { anchor: created, id: raw } }),
    },
    {
      name: "logs: log-mark anchors, first chunk",
      source: "src/db/logs.ts anchorStream (mark)",
      sql: anchorQuery("mark"),
    },
    {
      name: "logs: log-mark anchors, next chunk",
      source: "src/db/logs.ts anchorStream (mark)",
      sql: anchorQuery("mark", { after: { anchor: created, id: raw } }),
    },
    {
      name: "logs: a page's entries",
      source: "src/db/logs.ts loadEntries",
      sql: `SELECT ${MESSAGE_COLUMNS.split(",").map((c) => `m.${c.trim()}`).join(", ")},
        (SELECT json_group_array(json_set(l.value, '$.i', l.key)) FROM json_each(m.log) l WHERE l.key IN (SELECT value FROM json_each(p.value ->> '$[1]'))) AS entries
        FROM json_each('[["${raw}",[0,1,2]]]') p JOIN messages m ON m.id = p.value ->> '$[0]'`,
    },
    {
      name: "logs: tenant + messageId filter",
      source: "src/db/logs.ts listEvents (messageId)",
      sql: `SELECT m.id, 0 AS anchor, coalesce(length(m.body), 0) AS bz, m.body_ref IS NOT NULL AS br, ${lightEntries(null)} AS light
        FROM messages m WHERE m.tenant_id = 'dev-default' AND m.id IN (SELECT value FROM json_each(${ids}))`,
    },
    {
      name: "logs: tenant + url filter (creation anchors)",
      source: "src/db/logs.ts anchorStream + src/db/where.ts",
      sql: anchorQuery("created", { extra: `m.url IN (SELECT value FROM json_each('["http://nowhere.invalid/"]'))` }),
    },
    {
      name: "cancel by id (DELETE /v2/messages/{id}, bulk cancel by ids)",
      source: "src/db/messages.ts cancelChunk",
      sql: `UPDATE messages SET cancel_requested = 1, state = 'CANCEL_REQUESTED', ${appendLog("2", [`'{"s":"CANCEL_REQUESTED"}'`])}
        WHERE tenant_id = 'dev-default' AND id IN (SELECT value FROM json_each(${ids})) AND finished_at IS NULL AND cancel_requested = 0`,
    },
    {
      name: "bulk cancel: pending messages of a queue not yet admitted",
      source: "src/db/messages.ts selectPendingIds (cancelHeldInQueue)",
      sql: "SELECT m.id, m.due_at FROM messages m WHERE m.tenant_id = 'dev-default' AND m.finished_at IS NULL AND m.cancel_requested = 0 AND m.queue_name = 'q' AND m.held = 1 ORDER BY m.due_at LIMIT 5000",
    },
    {
      name: "attempts under way (GET /v2/globalParallelism)",
      source: "src/db/messages.ts attemptsUnderWay",
      sql: "SELECT count(*) AS n FROM messages WHERE tenant_id = 'dev-default' AND finished_at IS NULL AND lease_until > 2",
    },
    {
      name: "GET /v2/messages/{id}",
      source: "src/db/messages.ts getPendingMessage",
      sql: `SELECT ${ROW} FROM messages WHERE id = ${id} AND tenant_id = 'dev-default' AND finished_at IS NULL`,
    },
    { name: "dedup lookup (with a deduplication id)", source: "src/db/dedup.ts dedupResponse", sql: "SELECT response FROM dedup WHERE tenant_id = 'dev-default' AND id = 'x' AND expires_at > 1" },
  ];
}

/**
 * The plan lines that read a growing table row by row: SCAN of messages or log_marks (or their aliases m, p, c, o,
 * k), and of the DLQ (alias d), which grows with failures. (k is also signing_keys in some queries: one row per
 * tenant, a table that grows too.) Not scans of json_each (virtual tables) or of a query's own subquery results
 * (CO-ROUTINE / MATERIALIZE). Also flagged: a search of messages_tenant by tenant alone, which reads every stored
 * message of the tenant.
 */
function bigScans(plan) {
  const own = new Set(plan.map((d) => /^(?:CO-ROUTINE|MATERIALIZE) (\S+)/.exec(d)?.[1]).filter(Boolean));
  return plan.filter((d) => {
    const scan = /^SCAN (messages|log_marks|dlq|m|p|c|o|k|d)\b/.exec(d);
    if (scan) return !own.has(scan[1]) && !/VIRTUAL TABLE/.test(d);
    return /^SEARCH \S+ USING (?:COVERING )?INDEX messages_tenant \(tenant_id=\?\)/.test(d);
  });
}

async function explainAll(appDir, state) {
  const { persistDir, t0, stepMs } = state;
  // A seeded message of this state (its id made at its creation time, as bench/lib.mjs seeds them).
  const i = Math.min(42, Math.max(0, state.size - 1));
  const QUERIES = hotQueries(`'${seedMessageId(i, t0, stepMs)}'`, t0 + i * stepMs);
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
      const scans = bigScans(plan);
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
      ["Stored messages (log entries)", "publish p50 ms", "publish p99 ms", "publish → delivery p50 ms", "publishes/s", "GET /v2/logs p50 ms", "logs, no-match url filter p50 ms", "seed s", "state MiB", "other cores"],
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
    lines.push(`EXPLAIN QUERY PLAN on the ${fmt(largestState)}-message state (SCAN of messages/log_marks/dlq, and walks of a tenant's whole messages_tenant range, flagged):`);
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
      if (!opts["no-explain"]) result.explain = await explainAll(snap.appDir, result.states[result.states.length - 1]);
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
