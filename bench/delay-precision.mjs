#!/usr/bin/env node
// Delay precision benchmark: how long after its due time does a message reach its destination?
//
// Starts its own Boomerang dev server (scripts/dev.mjs on a snapshot of the sources, fresh state, both under
// .wrangler/bench-*) and its own HTTP destination on 127.0.0.1, then measures, all against the same clock
// (Date.now() of this process):
//   - delayed messages (Upstash-Delay, 1–10 s, some in ms): arrival − (publish request start + delay)
//   - Upstash-Not-Before messages: arrival − the second boundary they name
//   - immediate messages (the baseline): arrival − publish request start
//   - schedule fires (cron `* * * * *`): arrival − the minute boundary
// After each run the server's own log entries break the lag down (due → consumer claims it → arrival).
// Prints a Markdown table and writes the full results to bench/results/delay-precision-<date>.json.
//
// Usage: node bench/delay-precision.mjs [--count 200] [--runs 3] [--fires 2] [--help]
// Exit code: 0 when every message arrived once and none early, 2 when some arrived early or never, 1 on errors.

import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, gitCommit, snapshotTree } from "./lib.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "127.0.0.1";
const TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=";
/** The issue's target for delayed messages and schedule fires. */
const TARGET_P99_MS = 1000;
/** Publishes in flight at once; the pace is open-loop, this only bounds it if the server stalls. */
const MAX_IN_FLIGHT = 16;
/** Every request to the server gives up after this long. */
const REQUEST_TIMEOUT_MS = 15_000;
/** How long the dev server may take to print "ready in". */
const STARTUP_TIMEOUT_MS = 180_000;
/**
 * The server's sweeper re-drives unfinished work 15 s after it was due (every 30 s in dev): a message that reaches
 * the consumer later than this was almost certainly dropped by the alarm / queue path and rescued by the sweeper.
 */
const STUCK_MS = 15_000;
/** The millisecond delays of the delayed group (every tenth message, cycled); the rest are whole seconds. */
const MS_DELAYS = [1500, 2250, 3750, 4100, 5999, 6500, 7125, 8800, 9333, 2500];

// ---------------------------------------------------------------------------------------------------------------
// Options

const OPTIONS = {
  count: { value: 200, min: 1, max: 5000, help: "delayed messages per run (delays spread over 1–10 s)" },
  runs: { value: 3, min: 1, max: 20, help: "how many times to repeat the message measurement" },
  fires: { value: 2, min: 0, max: 10, help: "schedule fires to measure (one per minute; 0 skips)" },
  immediate: { value: 50, min: 0, max: 5000, help: "immediate (no delay) messages per run, the baseline" },
  "not-before": { value: 20, min: 0, max: 5000, help: "Upstash-Not-Before messages per run" },
  rate: { value: 20, min: 1, max: 500, help: "publishes per second (steady, open-loop)" },
  grace: { value: 60, min: 5, max: 600, help: "seconds to wait for stragglers after the last due time" },
  port: { value: 0, min: 0, max: 65535, help: "dev server port (0 picks a free one)" },
  "max-minutes": { value: 0, min: 0, max: 240, help: "hard time limit (0 derives one from the other options)" },
};
const FLAGS = {
  verbose: "run the dev server without --quiet and echo its output (one line per queue batch)",
  live: "serve the working tree itself instead of a snapshot (wrangler then reloads on every edit)",
  "keep-state": "keep the .wrangler/bench-* state directory afterwards",
  help: "show this help",
};

function usage() {
  const lines = ["Usage: node bench/delay-precision.mjs [options]", ""];
  for (const [name, o] of Object.entries(OPTIONS)) lines.push(`  --${name.padEnd(12)} ${o.help} (default ${o.value})`);
  for (const [name, help] of Object.entries(FLAGS)) lines.push(`  --${name.padEnd(12)} ${help}`);
  return lines.join("\n");
}

function parseArgs(argv) {
  const values = Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, o.value]));
  const flags = Object.fromEntries(Object.keys(FLAGS).map((k) => [k, false]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"\n\n${usage()}`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    if (Object.hasOwn(FLAGS, name)) {
      flags[name] = true;
      continue;
    }
    const o = Object.hasOwn(OPTIONS, name) ? OPTIONS[name] : undefined;
    if (!o) throw new Error(`unknown option "${arg}"\n\n${usage()}`);
    const raw = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    const n = Number(raw);
    if (raw === undefined || raw === "" || !Number.isInteger(n) || n < o.min || n > o.max) {
      throw new Error(`--${name} needs a whole number from ${o.min} to ${o.max}, got "${raw ?? ""}"`);
    }
    values[name] = n;
  }
  return { ...values, ...flags };
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
}
if (opts.help) {
  console.log(usage());
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

const now = () => Date.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const startedAt = now();
const elapsed = () => `${((now() - startedAt) / 1000).toFixed(1).padStart(6)}s`;
const log = (msg) => console.log(`[bench ${elapsed()}] ${msg}`);
const warn = (msg) => console.log(`[bench ${elapsed()}] !!! ${msg}`);
const clockTime = (t) => new Date(t).toISOString().slice(11, 19);

/** A small seeded generator (mulberry32): run N interleaves its groups the same way every time. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle(list, random) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

/** Nearest-rank percentiles (plus min, mean and max) of a list of milliseconds; null fields when empty. */
function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const pick = (q) => (n === 0 ? null : sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]);
  return {
    n,
    min: n ? sorted[0] : null,
    p50: pick(0.5),
    p90: pick(0.9),
    p99: pick(0.99),
    max: n ? sorted[n - 1] : null,
    mean: n ? Math.round(sorted.reduce((s, v) => s + v, 0) / n) : null,
  };
}

function median(values) {
  const sorted = values.filter((v) => v !== null).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : Math.round((sorted[mid - 1] + sorted[mid]) / 2);
}

/** An error's message plus its cause (fetch reports "fetch failed" and keeps the socket error in `cause`). */
function describeError(err) {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  if (cause instanceof Error) {
    const code = "code" in cause && typeof cause.code === "string" ? ` ${cause.code}` : "";
    return `${err.message} (${cause.message}${code})`;
  }
  return err.message;
}

/**
 * CPU time so far (Linux /proc, in clock ticks): the whole machine's busy and total time, and the time used by
 * this process plus the dev server's process group. Null where /proc is not available.
 */
function cpuTicks() {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3] + (fields[4] ?? 0);
    const pgid = devChild?.pid;
    let ours = 0;
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${name}/stat`, "utf8");
      } catch {
        continue; // the process ended meanwhile
      }
      // Fields after the command name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(name) === process.pid || (pgid !== undefined && Number(rest[2]) === pgid)) ours += Number(rest[11]) + Number(rest[12]);
    }
    return { total, busy: total - idle, ours };
  } catch {
    return null;
  }
}

/** How busy the machine was between two cpuTicks() readings, in cores: all work, ours, everyone else's. */
function cpuUse(before, after) {
  if (!before || !after || after.total <= before.total) return null;
  const cores = os.availableParallelism();
  const share = (d) => Number(((d / (after.total - before.total)) * cores).toFixed(2));
  const busy = share(after.busy - before.busy);
  const ours = share(after.ours - before.ours);
  return { cores, busy, ours, others: Number(Math.max(0, busy - ours).toFixed(2)) };
}

// ---------------------------------------------------------------------------------------------------------------
// State shared with the cleanup path

const stamp = new Date(startedAt).toISOString().slice(0, 19).replace(/:/g, "-");
/** Everything the benchmark writes outside bench/results: the source snapshot and the server's state. */
const workDir = path.join(root, ".wrangler", `bench-${stamp}-${process.pid}`);
const persistDir = path.join(workDir, "state");
const resultsDir = path.join(root, "bench", "results");
/** The dev server process (leader of its own process group). */
let devChild = null;
let apiBase = "";
let destination = null;
let destBase = "";
let scheduleId = null;
let cleaning = null;
const serverLog = [];
const serverProblems = [];

/** Things the server says that explain late deliveries (only visible without --quiet, i.e. with --verbose). */
const serverEvents = { reloads: [], redrives: [] };

function remember(line) {
  serverLog.push(line);
  if (serverLog.length > 200) serverLog.shift();
  if (line.includes("Reloading local server")) {
    serverEvents.reloads.push(new Date().toISOString());
    if (devChild) warn("the dev server is reloading (its sources changed): queued deliveries are dropped until the sweeper re-drives them");
  }
  const redrive = /sweeper re-drove (\d+)/.exec(line);
  if (redrive) serverEvents.redrives.push({ at: new Date().toISOString(), count: Number(redrive[1]) });
  if (/error|exception|failed|uncaught/i.test(line) && serverProblems.length < 50) serverProblems.push(line);
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return err instanceof Error && "code" in err && err.code === "EPERM";
  }
}

function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

async function stopDevServer() {
  if (!devChild || devChild.pid === undefined) return;
  const pgid = devChild.pid;
  devChild = null;
  if (!groupAlive(pgid)) return;
  log("stopping the dev server …");
  signalGroup(pgid, "SIGTERM");
  const until = now() + 5000;
  while (groupAlive(pgid) && now() < until) await sleep(100);
  if (groupAlive(pgid)) {
    warn("the dev server did not stop within 5 s of SIGTERM; sending SIGKILL");
    signalGroup(pgid, "SIGKILL");
    const killUntil = now() + 3000;
    while (groupAlive(pgid) && now() < killUntil) await sleep(100);
  }
}

function cleanup() {
  if (cleaning) return cleaning;
  cleaning = (async () => {
    if (scheduleId && apiBase) {
      const id = scheduleId;
      scheduleId = null;
      await api("DELETE", `/v2/schedules/${id}`, {}, 3000).catch(() => {});
    }
    await stopDevServer();
    if (destination) {
      destination.closeAllConnections();
      destination.close();
      destination = null;
    }
    if (!opts["keep-state"]) rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

// Last resort when the process ends without the async cleanup having finished.
process.on("exit", () => {
  if (devChild && devChild.pid !== undefined) signalGroup(devChild.pid, "SIGKILL");
  if (!opts["keep-state"]) rmSync(workDir, { recursive: true, force: true });
});

let interrupted = false;
function onSignal(signal) {
  if (interrupted) {
    // A second Ctrl-C: no more waiting.
    if (devChild && devChild.pid !== undefined) signalGroup(devChild.pid, "SIGKILL");
    process.exit(130);
  }
  interrupted = true;
  warn(`${signal}: stopping (press Ctrl-C again to kill immediately)`);
  cleanup().finally(() => process.exit(130));
}
process.on("SIGINT", () => onSignal("SIGINT"));
process.on("SIGTERM", () => onSignal("SIGTERM"));
process.on("uncaughtException", (err) => {
  console.error("[bench] uncaught error:", err);
  cleanup().finally(() => process.exit(1));
});
process.on("unhandledRejection", (err) => {
  console.error("[bench] unhandled rejection:", err);
  cleanup().finally(() => process.exit(1));
});

// ---------------------------------------------------------------------------------------------------------------
// The dev server

async function startDevServer(port, appDir) {
  mkdirSync(persistDir, { recursive: true });
  const script = path.join(appDir, "scripts", "dev.mjs");
  log(`starting the dev server on ${HOST}:${port} from ${path.relative(root, appDir) || "the working tree"} (state in ${path.relative(root, persistDir)}) …`);
  const args = [script, "--port", String(port), "--ip", HOST, "--persist-to", persistDir, ...(opts.verbose ? [] : ["--quiet"])];
  const child = spawn(process.execPath, args, {
    cwd: appDir,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  devChild = child;
  apiBase = `http://${HOST}:${port}`;
  const t0 = now();
  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      reject(new Error(`the dev server printed no "ready in" within ${STARTUP_TIMEOUT_MS / 1000} s:\n${serverLog.slice(-30).join("\n")}`));
    }, STARTUP_TIMEOUT_MS);
    const onData = (stream) => {
      let buffered = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        buffered += chunk;
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) {
          remember(line);
          if (opts.verbose) console.log(`[server ${clockTime(now())}.${String(now() % 1000).padStart(3, "0")}] ${line}`);
          if (!ready && line.includes("ready in")) {
            ready = true;
            clearTimeout(timer);
            resolve(now() - t0);
          }
        }
      });
    };
    onData(child.stdout);
    onData(child.stderr);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`the dev server exited (${code ?? signal}) before it was ready:\n${serverLog.slice(-30).join("\n")}`));
      else if (!cleaning) warn(`the dev server exited unexpectedly (${code ?? signal}); deliveries will stop`);
    });
  });
}

/** A request to the Boomerang server (only ever 127.0.0.1). Returns the parsed JSON body. */
async function api(method, pathname, headers = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
  const url = new URL(apiBase + pathname);
  if (url.hostname !== HOST) throw new Error(`refusing to send a request to ${url.hostname}`);
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...headers },
    body: method === "POST" ? "" : undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${pathname} answered ${res.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

// ---------------------------------------------------------------------------------------------------------------
// The destination: timestamps every arrival the moment its request line and headers are in

/** Items waiting for delivery, by the destination path they were published to. */
const itemsByPath = new Map();
/** Every arrival of a schedule fire. */
const scheduleArrivals = [];
const strays = [];

function startDestination() {
  return new Promise((resolve, reject) => {
    const srv = http.createServer((req, res) => {
      const at = now();
      const pathname = req.url ?? "";
      const messageId = String(req.headers["upstash-message-id"] ?? "");
      if (pathname.startsWith("/s/")) {
        scheduleArrivals.push({ at, pathname, messageId, scheduleId: String(req.headers["upstash-schedule-id"] ?? "") });
      } else {
        const item = itemsByPath.get(pathname);
        if (!item) {
          if (strays.length < 100) strays.push({ at, pathname, messageId });
        } else if (item.arrival === null) {
          item.arrival = at;
          item.arrivedId = messageId;
        } else {
          item.duplicates += 1;
        }
      }
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok");
      });
    });
    srv.keepAliveTimeout = 5000;
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      destination = srv;
      destBase = `http://${HOST}:${port}`;
      resolve(port);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Publishing

/**
 * One message of a run. `due` is the earliest time the server may deliver it, on this process's clock:
 * for delays, publish request start + delay (the server reads its clock after the request starts).
 * The server* fields come from the message's log entries, read after the run.
 */
function newItem(run, kind, index, fields) {
  const item = {
    run,
    kind,
    index,
    path: `/m/${run}/${kind}/${index}`,
    delayHeader: null,
    delayMs: null,
    notBefore: null,
    start: null,
    end: null,
    due: null,
    messageId: null,
    arrival: null,
    arrivedId: null,
    duplicates: 0,
    error: null,
    serverCreated: null,
    serverDue: null,
    serverActive: null,
    serverDelivered: null,
    ...fields,
  };
  itemsByPath.set(item.path, item);
  return item;
}

function planRun(run) {
  const items = [];
  let whole = 0;
  for (let i = 0; i < opts.count; i++) {
    // Every tenth delay is in milliseconds (not on a whole second); the rest cycle through 1–10 whole seconds.
    if (i % 10 === 5) {
      const ms = MS_DELAYS[Math.floor(i / 10) % MS_DELAYS.length];
      items.push(newItem(run, "delayed", i, { delayHeader: `${ms}ms`, delayMs: ms }));
    } else {
      const s = 1 + ((whole++ * 3) % 10);
      items.push(newItem(run, "delayed", i, { delayHeader: `${s}s`, delayMs: s * 1000 }));
    }
  }
  for (let i = 0; i < opts["not-before"]; i++) items.push(newItem(run, "notBefore", i, {}));
  for (let i = 0; i < opts.immediate; i++) items.push(newItem(run, "immediate", i, {}));
  return shuffle(items, seeded(run));
}

async function publishOne(item) {
  const headers = { "Upstash-Retries": "0", "content-type": "text/plain" };
  if (item.kind === "delayed" && item.delayHeader) headers["Upstash-Delay"] = item.delayHeader;
  item.start = now();
  if (item.kind === "notBefore") {
    // A whole second 2–6 s ahead; several messages share each boundary.
    item.notBefore = Math.ceil(item.start / 1000) + 2 + (item.index % 4);
    headers["Upstash-Not-Before"] = String(item.notBefore);
    item.due = item.notBefore * 1000;
  } else {
    item.due = item.start + (item.delayMs ?? 0);
  }
  try {
    const body = await api("POST", `/v2/publish/${destBase}${item.path}`, headers);
    item.messageId = body && typeof body.messageId === "string" ? body.messageId : null;
    if (!item.messageId) item.error = `no messageId in the answer: ${JSON.stringify(body)}`;
  } catch (err) {
    item.error = describeError(err);
  }
  item.end = now();
}

/** Publishes at a steady pace (open-loop: the schedule does not wait for answers, up to MAX_IN_FLIGHT). */
async function publishAll(items, label) {
  const interval = 1000 / opts.rate;
  const t0 = now();
  const inFlight = new Set();
  let lastReport = t0;
  let slipped = 0;
  for (let k = 0; k < items.length && !interrupted; k++) {
    await sleep(t0 + k * interval - now());
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    if (now() - (t0 + k * interval) > 50) slipped += 1;
    const p = publishOne(items[k]).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (now() - lastReport >= 2000) {
      lastReport = now();
      log(`${label}: published ${k + 1}/${items.length}, delivered ${items.filter((i) => i.arrival !== null).length}`);
    }
  }
  await Promise.all(inFlight);
  return { publishMs: now() - t0, slipped };
}

/** Waits until every accepted item has arrived, or until the last due time plus the grace period. */
async function awaitDeliveries(items, label) {
  const accepted = items.filter((i) => i.messageId !== null);
  const lastDue = Math.max(now(), ...accepted.map((i) => i.due ?? 0));
  const deadline = lastDue + opts.grace * 1000;
  let lastReport = 0;
  for (;;) {
    const waiting = accepted.filter((i) => i.arrival === null);
    if (waiting.length === 0 || interrupted) return;
    const t = now();
    if (t >= deadline) {
      warn(`${label}: ${waiting.length} message(s) never arrived within ${opts.grace} s of the last due time`);
      return;
    }
    if (t - lastReport >= 2000) {
      lastReport = t;
      const overdue = waiting.filter((i) => (i.due ?? 0) < t - 1000).length;
      log(`${label}: delivered ${accepted.length - waiting.length}/${accepted.length}, ${overdue} more than 1 s overdue, last due in ${Math.max(0, Math.round((lastDue - t) / 1000))} s`);
    }
    await sleep(200);
  }
}

/**
 * The server's own timestamps for every message logged since `fromMs`: when it accepted the message (CREATED
 * time, its `now`), when it was due (CREATED nextDeliveryTime), when the consumer claimed it (ACTIVE) and when
 * the attempt was recorded (DELIVERED). Read after the deliveries, so it does not disturb them.
 */
async function serverTimes(fromMs) {
  const times = new Map();
  let cursor = null;
  for (let page = 0; page < 50; page++) {
    const q = new URLSearchParams({ fromDate: String(Math.max(0, fromMs)), count: "1000", order: "asc" });
    if (cursor) q.set("cursor", cursor);
    const body = await api("GET", `/v2/logs?${q}`);
    const entries = body && Array.isArray(body.logs) ? body.logs : [];
    for (const e of entries) {
      if (typeof e.messageId !== "string" || typeof e.time !== "number") continue;
      const t = times.get(e.messageId) ?? { created: null, due: null, active: null, delivered: null };
      if (e.state === "CREATED" && t.created === null) {
        t.created = e.time;
        t.due = typeof e.nextDeliveryTime === "number" ? e.nextDeliveryTime : e.time;
      } else if (e.state === "ACTIVE" && t.active === null) t.active = e.time;
      else if (e.state === "DELIVERED" && t.delivered === null) t.delivered = e.time;
      times.set(e.messageId, t);
    }
    cursor = body && typeof body.cursor === "string" ? body.cursor : null;
    if (!cursor) break;
  }
  return times;
}

async function attachServerTimes(items, fromMs) {
  try {
    const times = await serverTimes(fromMs);
    for (const item of items) {
      const t = item.messageId ? times.get(item.messageId) : undefined;
      if (!t) continue;
      item.serverCreated = t.created;
      item.serverDue = t.due;
      item.serverActive = t.active;
      item.serverDelivered = t.delivered;
    }
  } catch (err) {
    warn(`could not read the server's logs, so the server-side breakdown is missing: ${err instanceof Error ? err.message : String(err)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Analysis

/** b − a, or null when either is unknown. */
const span = (a, b) => (a === null || a === undefined || b === null || b === undefined ? null : b - a);
const isMsDelay = (s) => s.kind === "delayed" && (s.delay ?? "").endsWith("ms");

/**
 * What the table shows, in order. `kinds` selects samples, `value` gives milliseconds (null: unknown),
 * `lag` marks the rows where a negative value means an early delivery, `primary` the rows that own the
 * missing / duplicate counts of their kind.
 */
const METRICS = [
  { key: "immediate", label: "Immediate (baseline): publish start → delivered", kinds: ["immediate"], primary: true, lag: true, value: (s) => span(s.start, s.arrival) },
  { key: "immediateServer", label: "… server accepted → delivered", kinds: ["immediate"], value: (s) => span(s.serverCreated, s.arrival) },
  { key: "immediateToConsumer", label: "… server accepted → consumer claims it", kinds: ["immediate"], value: (s) => span(s.serverCreated, s.serverActive) },
  { key: "delayed", label: "Delayed 1–10 s: due (publish start + delay) → delivered", kinds: ["delayed"], primary: true, lag: true, value: (s) => span(s.due, s.arrival) },
  { key: "delayedWholeSeconds", label: "… whole-second delays (`Ns`)", kinds: ["delayed"], filter: (s) => !isMsDelay(s), lag: true, value: (s) => span(s.due, s.arrival) },
  { key: "delayedMs", label: "… millisecond delays (`NNNNms`)", kinds: ["delayed"], filter: isMsDelay, lag: true, value: (s) => span(s.due, s.arrival) },
  { key: "delayedServer", label: "Delayed: server-recorded due → delivered", kinds: ["delayed"], lag: true, value: (s) => span(s.serverDue, s.arrival) },
  { key: "delayedToConsumer", label: "… server due → consumer claims it (alarm + queue)", kinds: ["delayed"], value: (s) => span(s.serverDue, s.serverActive) },
  { key: "delayedConsumerToArrival", label: "… consumer claims it → arrival (D1 + HTTP)", kinds: ["delayed"], value: (s) => span(s.serverActive, s.arrival) },
  { key: "notBefore", label: "Not-Before: second boundary → delivered", kinds: ["notBefore"], primary: true, lag: true, value: (s) => span(s.due, s.arrival) },
  { key: "notBeforeToConsumer", label: "… boundary → consumer claims it", kinds: ["notBefore"], value: (s) => span(s.due, s.serverActive) },
  { key: "publishRoundTrip", label: "Publish round trip (request start → response)", kinds: ["immediate", "delayed", "notBefore"], value: (s) => span(s.start, s.end) },
  { key: "publishToServerClock", label: "… request start → server reads its clock", kinds: ["immediate", "delayed", "notBefore"], value: (s) => span(s.start, s.serverCreated) },
];

function sampleOf(i) {
  return {
    kind: i.kind,
    index: i.index,
    delay: i.delayHeader,
    notBefore: i.notBefore,
    start: i.start,
    end: i.end,
    due: i.due,
    arrival: i.arrival,
    lagMs: span(i.due, i.arrival),
    messageId: i.messageId,
    duplicates: i.duplicates,
    idMismatch: i.arrival !== null && i.messageId !== null && i.arrivedId !== i.messageId,
    error: i.error,
    serverCreated: i.serverCreated,
    serverDue: i.serverDue,
    serverActive: i.serverActive,
    serverDelivered: i.serverDelivered,
  };
}

/** Percentiles of every metric over a list of samples, with early / missing / duplicate counts. */
function analyze(samples) {
  const out = {};
  for (const m of METRICS) {
    const chosen = samples.filter((s) => m.kinds.includes(s.kind) && (!m.filter || m.filter(s)));
    const values = chosen.map(m.value).filter((v) => v !== null);
    const row = { ...summarize(values) };
    if (m.lag) row.early = values.filter((v) => v < 0).length;
    if (m.primary) {
      row.publishErrors = chosen.filter((s) => s.error !== null).length;
      row.missing = chosen.filter((s) => s.messageId !== null && s.arrival === null).length;
      row.duplicates = chosen.reduce((n, s) => n + s.duplicates, 0);
      row.idMismatches = chosen.filter((s) => s.idMismatch).length;
      row.stuck = chosen.filter((s) => (span(s.serverDue, s.serverActive) ?? 0) > STUCK_MS).length;
    }
    out[m.key] = row;
  }
  return out;
}

function analyzeSchedule(expected, sid, times) {
  const first = expected[0];
  const last = expected[expected.length - 1];
  // Each arrival belongs to the nearest minute boundary, so an early fire shows as a negative lag.
  const fires = scheduleArrivals.map((a) => {
    const boundary = Math.round(a.at / 60_000) * 60_000;
    const t = times.get(a.messageId);
    return {
      boundary: new Date(boundary).toISOString(),
      arrival: new Date(a.at).toISOString(),
      lagMs: a.at - boundary,
      alarmMs: t ? span(boundary, t.created) : null,
      consumerMs: t ? span(boundary, t.active) : null,
      boundaryMs: boundary,
      messageId: a.messageId,
      scheduleId: a.scheduleId,
    };
  });
  const perBoundary = new Map();
  for (const f of fires) perBoundary.set(f.boundaryMs, (perBoundary.get(f.boundaryMs) ?? 0) + 1);
  const firstPerBoundary = fires.filter((f, i) => fires.findIndex((g) => g.boundaryMs === f.boundaryMs) === i);
  const values = (key) => firstPerBoundary.map((f) => f[key]).filter((v) => v !== null);
  return {
    scheduleId: sid,
    expectedBoundaries: expected.map((t) => new Date(t).toISOString()),
    lag: { ...summarize(values("lagMs")), early: fires.filter((f) => f.lagMs < 0).length, missing: expected.filter((t) => !perBoundary.has(t)).length },
    boundaryToAlarm: summarize(values("alarmMs")),
    boundaryToConsumer: summarize(values("consumerMs")),
    duplicates: [...perBoundary.values()].reduce((s, c) => s + c - 1, 0),
    unexpected: fires.filter((f) => f.boundaryMs < first || f.boundaryMs > last).length,
    wrongScheduleId: fires.filter((f) => f.scheduleId !== sid).length,
    fires,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Phases

async function warmUp() {
  // The first requests compile the worker and create the Durable Objects; they are not part of any run.
  const items = [];
  for (let i = 0; i < 10; i++) items.push(newItem(0, "immediate", i, {}));
  for (let i = 0; i < 10; i++) items.push(newItem(0, "delayed", i, { delayHeader: "1s", delayMs: 1000 }));
  log(`warm-up: ${items.length} messages (not counted) …`);
  await publishAll(items, "warm-up");
  const failed = items.filter((i) => i.error !== null);
  if (failed.length) throw new Error(`warm-up publishes failed: ${failed[0].error}`);
  await awaitDeliveries(items, "warm-up");
  if (interrupted) throw new Error("interrupted");
  const lags = items.filter((i) => i.arrival !== null).map((i) => i.arrival - (i.due ?? 0));
  log(`warm-up done (max lag ${Math.max(...lags)} ms)`);
}

async function measureRun(run) {
  const items = planRun(run);
  const label = `run ${run}/${opts.runs}`;
  const runStart = now();
  const ticksBefore = cpuTicks();
  log(`${label}: publishing ${opts.count} delayed, ${opts["not-before"]} not-before and ${opts.immediate} immediate messages at ${opts.rate}/s …`);
  const { publishMs, slipped } = await publishAll(items, label);
  const errors = items.filter((i) => i.error !== null);
  if (errors.length) warn(`${label}: ${errors.length} publish(es) failed, e.g. ${errors[0].error}`);
  if (slipped) warn(`${label}: ${slipped} publish(es) started more than 50 ms late (the pace slipped)`);
  await awaitDeliveries(items, label);
  if (interrupted) throw new Error("interrupted");
  await attachServerTimes(items, runStart - 1000);
  const samples = items.map(sampleOf);
  const a = analyze(samples);
  log(
    `${label}: delayed p50 ${a.delayed.p50} ms, p99 ${a.delayed.p99} ms, max ${a.delayed.max} ms ` +
      `(from the server's due: p99 ${a.delayedServer.p99} ms); not-before p99 ${a.notBefore.p99} ms; ` +
      `immediate p50 ${a.immediate.p50} ms; publish round trip p50 ${a.publishRoundTrip.p50} ms`,
  );
  for (const m of METRICS.filter((x) => x.primary)) {
    const g = a[m.key];
    if (g.early) warn(`EARLY DELIVERY: ${label}: ${g.early} ${m.key} message(s) arrived before their due time`);
    if (g.missing) warn(`MISSING: ${label}: ${g.missing} ${m.key} message(s) never arrived`);
    if (g.duplicates) warn(`${label}: ${g.duplicates} duplicate ${m.key} arrival(s)`);
    if (g.idMismatches) warn(`${label}: ${g.idMismatches} ${m.key} arrival(s) carried another Upstash-Message-Id than the publish returned`);
    if (g.stuck) warn(`STUCK: ${label}: ${g.stuck} ${m.key} message(s) reached the consumer more than ${STUCK_MS / 1000} s after they were due (rescued by the sweeper?)`);
  }
  if (a.delayedServer.early) warn(`EARLY DELIVERY: ${label}: ${a.delayedServer.early} delayed message(s) arrived before the due time the server recorded`);
  // Recorded for the reader: other work on the machine competes with the server for the same cores.
  const load = os.loadavg().map((v) => Number(v.toFixed(2)));
  const cpu = cpuUse(ticksBefore, cpuTicks());
  if (cpu) {
    log(`${label}: CPU in use ${cpu.busy} of ${cpu.cores} cores (benchmark + server ${cpu.ours}, other processes ${cpu.others})`);
    if (cpu.others >= 0.5) warn(`${label}: other processes used ${cpu.others} cores during this run; the numbers include that contention`);
  }
  return { run, publishMs, slippedPublishes: slipped, loadAverage: load, cpu, metrics: a, samples };
}

async function measureSchedule() {
  // Creating the schedule just before a minute boundary would leave it unclear whether that boundary counts.
  const toBoundary = 60_000 - (now() % 60_000);
  if (toBoundary < 5000) {
    log(`schedule: waiting ${Math.ceil(toBoundary / 1000)} s to stay clear of the minute boundary …`);
    await sleep(toBoundary + 1000);
  }
  const created = now();
  const body = await api("POST", `/v2/schedules/${destBase}/s/${process.pid}`, {
    "Upstash-Cron": "* * * * *",
    "Upstash-Retries": "0",
  });
  if (!body || typeof body.scheduleId !== "string") throw new Error(`no scheduleId in the answer: ${JSON.stringify(body)}`);
  scheduleId = body.scheduleId;
  const sid = body.scheduleId;
  const first = Math.floor(created / 60_000) * 60_000 + 60_000;
  const expected = Array.from({ length: opts.fires }, (_, k) => first + k * 60_000);
  const last = expected[expected.length - 1];
  log(`schedule ${sid}: measuring ${opts.fires} fire(s) at ${expected.map(clockTime).join(", ")} UTC (about ${Math.ceil((last - now()) / 60_000)} min) …`);
  const deadline = last + opts.grace * 1000;
  let lastReport = 0;
  let seen = 0;
  while (!interrupted) {
    const fired = new Set(scheduleArrivals.map((a) => Math.round(a.at / 60_000) * 60_000));
    const got = expected.filter((t) => fired.has(t)).length;
    for (const a of scheduleArrivals.slice(seen)) {
      const boundary = Math.round(a.at / 60_000) * 60_000;
      log(`schedule: fire for ${clockTime(boundary)} arrived ${a.at - boundary} ms after the boundary`);
    }
    seen = scheduleArrivals.length;
    if (got === expected.length) break;
    const t = now();
    if (t >= deadline) {
      warn(`schedule: only ${got}/${expected.length} fire(s) arrived by ${opts.grace} s after the last boundary`);
      break;
    }
    if (t - lastReport >= 10_000) {
      lastReport = t;
      const next = expected.find((b) => !fired.has(b)) ?? last;
      log(`schedule: ${got}/${expected.length} fire(s) in; next boundary ${clockTime(next)} UTC in ${Math.max(0, Math.round((next - t) / 1000))} s`);
    }
    await sleep(200);
  }
  if (interrupted) throw new Error("interrupted");
  // Stop it before the next boundary, then give a late duplicate a moment to show up.
  await api("DELETE", `/v2/schedules/${sid}`);
  scheduleId = null;
  await sleep(1000);
  let times = new Map();
  try {
    times = await serverTimes(created - 1000);
  } catch (err) {
    warn(`could not read the server's logs for the schedule fires: ${err instanceof Error ? err.message : String(err)}`);
  }
  const result = analyzeSchedule(expected, sid, times);
  if (result.lag.early) warn(`EARLY DELIVERY: ${result.lag.early} schedule fire(s) arrived before their minute boundary`);
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const fmt = (v) => (v === null || v === undefined ? "–" : `${v}`);

function tableRow(name, s) {
  return `| ${name} | ${s.n} | ${fmt(s.p50)} | ${fmt(s.p90)} | ${fmt(s.p99)} | ${fmt(s.max)} | ${fmt(s.early)} | ${fmt(s.missing)} |`;
}

function buildReport(runs, schedule) {
  const pooled = analyze(runs.flatMap((r) => r.samples));
  const perRun = (key, field) => runs.map((r) => r.metrics[key][field]);
  const medians = {
    delayedP50: median(perRun("delayed", "p50")),
    delayedP99: median(perRun("delayed", "p99")),
    delayedServerP50: median(perRun("delayedServer", "p50")),
    delayedServerP99: median(perRun("delayedServer", "p99")),
    notBeforeP99: median(perRun("notBefore", "p99")),
    immediateP50: median(perRun("immediate", "p50")),
  };

  const lines = [];
  lines.push(`### Delay precision: ${runs.length} run(s) × (${opts.count} delayed + ${opts["not-before"]} not-before + ${opts.immediate} immediate) at ${opts.rate}/s, ${schedule ? schedule.lag.n : 0} schedule fire(s)`);
  lines.push("");
  lines.push("Milliseconds, pooled over all runs. Lag = arrival at the destination − due time; rows starting with … break the row above down.");
  lines.push("");
  lines.push("| Group | n | p50 | p90 | p99 | max | early | missing |");
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const m of METRICS) lines.push(tableRow(m.label, pooled[m.key]));
  if (schedule) {
    lines.push(tableRow("Schedule fires: minute boundary → delivered", schedule.lag));
    lines.push(tableRow("… boundary → fire recorded (alarm rang)", schedule.boundaryToAlarm));
    lines.push(tableRow("… boundary → consumer claims it", schedule.boundaryToConsumer));
  }
  lines.push("");
  lines.push(`Delayed, per run p50: ${perRun("delayed", "p50").join(", ")} → median **${fmt(medians.delayedP50)} ms**; per run p99: ${perRun("delayed", "p99").join(", ")} → median **${fmt(medians.delayedP99)} ms**.`);
  const cpuText = runs.map((r) => (r.cpu ? `${r.cpu.others}` : "?")).join(", ");
  lines.push(`Cores used by other processes during each run (of ${os.availableParallelism()}): ${cpuText}.`);
  lines.push(`Delayed from the server-recorded due, median of per-run p50 / p99: ${fmt(medians.delayedServerP50)} / ${fmt(medians.delayedServerP99)} ms. Immediate baseline, per run p50: ${perRun("immediate", "p50").join(", ")}. Not-Before, per run p99: ${perRun("notBefore", "p99").join(", ")}.`);
  lines.push("");
  const verdict = (p99) => (p99 === null ? "not measured" : p99 <= TARGET_P99_MS ? "MET" : "NOT MET");
  lines.push(
    `Target p99 ≤ ${TARGET_P99_MS} ms — delayed messages (median of per-run p99 = ${fmt(medians.delayedP99)} ms): **${verdict(medians.delayedP99)}**` +
      (schedule ? `; schedule fires (p99 of ${schedule.lag.n} = ${fmt(schedule.lag.p99)} ms): **${verdict(schedule.lag.p99)}**.` : "; schedule fires: skipped (--fires 0)."),
  );

  const problems = [];
  for (const m of METRICS.filter((x) => x.primary)) {
    const t = pooled[m.key];
    if (t.early) problems.push(`EARLY DELIVERIES: ${t.early} ${m.key} message(s) arrived before they were due`);
    if (t.missing) problems.push(`MISSING: ${t.missing} ${m.key} message(s) never arrived`);
    if (t.duplicates) problems.push(`${t.duplicates} duplicate ${m.key} arrival(s)`);
    if (t.publishErrors) problems.push(`${t.publishErrors} ${m.key} publish(es) failed`);
    if (t.idMismatches) problems.push(`${t.idMismatches} ${m.key} arrival(s) with an unexpected Upstash-Message-Id`);
    if (t.stuck) {
      problems.push(
        `STUCK: ${t.stuck} ${m.key} message(s) reached the consumer more than ${STUCK_MS / 1000} s after they were due; ` +
          "the alarm / queue path most likely dropped them and the sweeper (15 s threshold, every 30 s) re-drove them",
      );
    }
  }
  if (pooled.delayedServer.early) problems.push(`EARLY DELIVERIES: ${pooled.delayedServer.early} delayed message(s) arrived before the due time the server recorded`);
  if (schedule) {
    if (schedule.lag.early) problems.push(`EARLY DELIVERIES: ${schedule.lag.early} schedule fire(s) arrived before their minute boundary`);
    if (schedule.lag.missing) problems.push(`MISSING: ${schedule.lag.missing} schedule fire(s) never arrived`);
    if (schedule.duplicates) problems.push(`${schedule.duplicates} duplicate schedule fire(s)`);
    if (schedule.unexpected) problems.push(`${schedule.unexpected} schedule fire(s) at a boundary that was not expected`);
    if (schedule.wrongScheduleId) problems.push(`${schedule.wrongScheduleId} schedule fire(s) without the right Upstash-Schedule-Id`);
  }
  if (strays.length) problems.push(`${strays.length} arrival(s) at paths nobody published to`);
  if (serverEvents.reloads.length) {
    problems.push(`the dev server reloaded ${serverEvents.reloads.length} time(s) while measuring (sources changed): the numbers are not representative`);
  }
  const redriven = serverEvents.redrives.reduce((n, r) => n + r.count, 0);
  if (redriven) problems.push(`the sweeper re-drove ${redriven} message(s) (it only does so for work the alarm / queue path left behind for 15 s)`);
  return { markdown: lines.join("\n"), pooled, medians, problems };
}

/** Pretty JSON, except that each sample takes one line (a run has hundreds of them). */
function toJson(result) {
  const blocks = new Map();
  const text = JSON.stringify(
    result,
    (key, value) => {
      if (key !== "samples" || !Array.isArray(value)) return value;
      const token = `@samples${blocks.size}@`;
      blocks.set(token, `[\n${value.map((v) => `        ${JSON.stringify(v)}`).join(",\n")}\n      ]`);
      return token;
    },
    2,
  );
  return text.replace(/"(@samples\d+@)"/g, (_, token) => blocks.get(token) ?? "[]") + "\n";
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const perRunItems = opts.count + opts.immediate + opts["not-before"];
  const estimateMinutes = 4 + opts.runs * ((perRunItems / opts.rate + 10 + opts.grace) / 60 + 0.5) + (opts.fires ? opts.fires + 1 + opts.grace / 60 : 0);
  const limitMinutes = opts["max-minutes"] || Math.ceil(estimateMinutes * 1.5);
  const watchdog = setTimeout(() => {
    warn(`hard time limit of ${limitMinutes} min reached; stopping`);
    cleanup().finally(() => process.exit(1));
  }, limitMinutes * 60_000);
  watchdog.unref();

  const machine = {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((v) => Number(v.toFixed(2))),
  };
  log(`machine: ${machine.cpus} CPU(s) (${machine.cpuModel}), node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}; hard limit ${limitMinutes} min`);
  if (machine.loadAverageAtStart[0] >= machine.cpus) {
    warn(`the 1-minute load average (${machine.loadAverageAtStart[0]}) is at or above the CPU count before the benchmark starts: other work will skew the numbers`);
  }

  const result = {
    benchmark: "delay-precision",
    startedAt: new Date(startedAt).toISOString(),
    finishedAt: null,
    complete: false,
    error: null,
    machine,
    options: { ...opts },
    targetP99Ms: TARGET_P99_MS,
    source: { commit: gitCommit(), live: opts.live, snapshotFingerprint: null },
    serverReadyMs: null,
    serverEvents,
    summary: null,
    schedule: null,
    runs: [],
    serverProblemLines: serverProblems,
    strays,
  };
  let exitCode = 0;
  try {
    await startDestination();
    const port = opts.port || (await freePort());
    let appDir = root;
    if (!opts.live) {
      const snap = snapshotTree(path.join(workDir, "app"));
      appDir = snap.appDir;
      result.source.snapshotFingerprint = snap.fingerprint;
    }
    result.serverReadyMs = await startDevServer(port, appDir);
    log(`dev server ready after ${(result.serverReadyMs / 1000).toFixed(1)} s; destination at ${destBase}`);
    await warmUp();
    for (let run = 1; run <= opts.runs && !interrupted; run++) result.runs.push(await measureRun(run));
    if (opts.fires > 0 && !interrupted) result.schedule = await measureSchedule();
    result.complete = !interrupted;
  } catch (err) {
    result.error = describeError(err);
    console.error(`[bench] failed: ${result.error}`);
    exitCode = 1;
  } finally {
    await cleanup();
    clearTimeout(watchdog);
  }

  result.finishedAt = new Date().toISOString();
  if (result.runs.length) {
    const report = buildReport(result.runs, result.schedule);
    result.summary = { pooled: report.pooled, medians: report.medians, problems: report.problems, markdown: report.markdown };
    console.log("\n" + report.markdown + "\n");
    if (report.problems.length) {
      console.log("!!! PROBLEMS FOUND !!!");
      for (const p of report.problems) console.log(`!!! ${p}`);
      console.log("");
      if (exitCode === 0 && report.problems.some((p) => p.startsWith("EARLY") || p.startsWith("MISSING"))) exitCode = 2;
    }
  }
  if (serverProblems.length) {
    console.log(`The dev server logged ${serverProblems.length} line(s) that look like errors; the first ones:`);
    for (const line of serverProblems.slice(0, 10)) console.log(`  ${line}`);
  }
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `delay-precision-${stamp}.json`);
  writeFileSync(file, toJson(result));
  log(`results written to ${path.relative(root, file)}`);
  process.exit(exitCode);
}

await main();
