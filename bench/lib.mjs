// Shared helpers for the benchmarks in bench/ (throughput, latency, growth, cost).
//
// What every benchmark gets from here:
//   - option parsing with a generated --help,
//   - a work directory under .wrangler/ (a snapshot of the sources, the servers' state, wrangler's debug log),
//     removed afterwards unless --keep-state,
//   - process groups for the servers it starts (Boomerang through scripts/dev.mjs, the bare "hello" worker
//     through `wrangler dev`), stopped on success, on errors, on Ctrl-C and on the hard time limit,
//   - a keep-alive HTTP client that only ever talks to 127.0.0.1, and a bounded load loop,
//   - a local destination server, percentiles, Markdown tables, and the JSON results file,
//   - CPU accounting from /proc: per process of a server's group, and cores used by everything else,
//   - `node bench/lib.mjs --serve-miniflare <options>`: a worker served by Miniflare's API without wrangler dev
//     (the hello worker of `--server lean`, next to Boomerang served by `npm start`).
//
// Plain Node ESM. Nothing beyond Node itself, except the project's own wrangler and (for --serve-miniflare and
// the row accounting of cost.mjs) miniflare, both already dev dependencies.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const HOST = "127.0.0.1";
/** The official QStash dev server's public token (the dev-default tenant). */
export const TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=";
/** Every request a benchmark makes gives up after this long. */
export const REQUEST_TIMEOUT_MS = 15_000;
/** How long a server may take to become ready. */
export const STARTUP_TIMEOUT_MS = 180_000;
/**
 * What a snapshot copies (node_modules is linked, not copied). The whole scripts folder: a module a launcher imports
 * cannot be left out.
 */
const SNAPSHOT_ENTRIES = ["src", "migrations", "scripts", "wrangler.toml", "package.json", "tsconfig.json", "bench/hello"];

/** Nothing waits on the network (the launchers' own settings). */
import { OFFLINE_ENV } from "../scripts/launcher.mjs";
import { publicPort, servedOn } from "../scripts/lean.mjs";
export { OFFLINE_ENV };

export const now = () => Date.now();
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

// ---------------------------------------------------------------------------------------------------------------
// Statistics and formatting

/** Nearest-rank percentile of an ascending list; null when empty. */
export function percentile(sorted, q) {
  const n = sorted.length;
  if (n === 0) return null;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
}

/** n, min, p50, p90, p99, max, mean of a list of numbers (null fields when empty). */
export function summarize(values) {
  const sorted = values.filter((v) => typeof v === "number" && Number.isFinite(v)).sort((a, b) => a - b);
  const n = sorted.length;
  const round = (v) => (v === null ? null : Math.round(v * 10) / 10);
  return {
    n,
    min: n ? round(sorted[0]) : null,
    p50: round(percentile(sorted, 0.5)),
    p90: round(percentile(sorted, 0.9)),
    p99: round(percentile(sorted, 0.99)),
    max: n ? round(sorted[n - 1]) : null,
    mean: n ? round(sorted.reduce((s, v) => s + v, 0) / n) : null,
  };
}

/** Median of the non-null numbers (mean of the middle two when even); null when there are none. */
export function median(values) {
  const sorted = values.filter((v) => typeof v === "number" && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** a ÷ b, or null when either is missing or b is 0. */
export function ratio(a, b) {
  if (a === null || b === null || a === undefined || b === undefined || b === 0) return null;
  return a / b;
}

/** A number for a table: "–" when missing, else rounded to `digits` decimals with thin grouping. */
export function fmt(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A Markdown table; `align` is one of "l" / "r" per column (default: first left, rest right). */
export function markdownTable(headers, rows, align) {
  const al = align ?? headers.map((_, i) => (i === 0 ? "l" : "r"));
  const line = (cells) => `| ${cells.map((c) => String(c).replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(headers), `|${al.map((a) => (a === "r" ? "---:" : "---")).join("|")}|`, ...rows.map(line)].join("\n");
}

/** An error's message plus its cause (fetch and sockets keep the real reason in `cause` / `code`). */
export function describeError(err) {
  if (!(err instanceof Error)) return String(err);
  const code = "code" in err && typeof err.code === "string" ? ` ${err.code}` : "";
  const cause = err.cause;
  if (cause instanceof Error) return `${err.message}${code} (${cause.message})`;
  return `${err.message}${code}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Options

/**
 * Parses `--name value`, `--name=value` and flags. `spec.options[name]` has `value` (the default), `help`, and
 * either `min` / `max` (whole numbers) or `list: true` (comma-separated whole numbers) or `text: true`.
 */
export function parseOptions(argv, spec, script) {
  const usage = () => {
    const lines = [`Usage: node bench/${script} [options]`, ""];
    for (const [name, o] of Object.entries(spec.options)) {
      const def = Array.isArray(o.value) ? o.value.join(",") : o.value;
      lines.push(`  --${name.padEnd(18)} ${o.help} (default ${def})`);
    }
    for (const [name, help] of Object.entries(spec.flags)) lines.push(`  --${name.padEnd(18)} ${help}`);
    return lines.join("\n");
  };
  const values = Object.fromEntries(Object.entries(spec.options).map(([k, o]) => [k, o.value]));
  const flags = Object.fromEntries(Object.keys(spec.flags).map((k) => [k, false]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"\n\n${usage()}`);
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    if (name in spec.flags) {
      flags[name] = true;
      continue;
    }
    const o = spec.options[name];
    if (!o) throw new Error(`unknown option "${arg}"\n\n${usage()}`);
    const raw = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (raw === undefined || raw === "") throw new Error(`--${name} needs a value`);
    if (o.text) {
      values[name] = raw;
    } else if (o.list) {
      const list = raw.split(",").map((s) => Number(s.trim()));
      if (list.some((n) => !Number.isInteger(n) || n < o.min || n > o.max)) {
        throw new Error(`--${name} needs comma-separated whole numbers from ${o.min} to ${o.max}, got "${raw}"`);
      }
      values[name] = list;
    } else {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < o.min || n > o.max) throw new Error(`--${name} needs a whole number from ${o.min} to ${o.max}, got "${raw}"`);
      values[name] = n;
    }
  }
  return { opts: { ...values, ...flags }, usage: usage() };
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark's lifetime: logging, work directory, cleanup, signals, time limit

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

/** The commit checked out (read straight from .git, no git command), or null. */
/**
 * The options of a benchmark script from the command line: prints the usage and exits 0 on --help, prints the
 * problem and exits 1 on a bad option. `check(opts)` may return a further error message.
 */
export function cliOptions(spec, script, check = () => null) {
  let parsed;
  try {
    parsed = parseOptions(process.argv.slice(2), spec, script);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
  if (parsed.opts.help) {
    console.log(parsed.usage);
    process.exit(0);
  }
  const problem = check(parsed.opts);
  if (problem) {
    console.error(problem);
    process.exit(1);
  }
  return parsed.opts;
}

/** The check shared by the scripts that can serve through wrangler dev or Miniflare's API. */
export function checkServerOption(opts) {
  if (opts.server === "miniflare") opts.server = "lean";
  return opts.server === "wrangler" || opts.server === "lean" ? null : `--server must be wrangler (npm run dev) or lean (npm start), got "${opts.server}"`;
}

export function gitCommit() {
  try {
    const head = readFileSync(path.join(root, ".git", "HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    const loose = path.join(root, ".git", ref);
    if (existsSync(loose)) return readFileSync(loose, "utf8").trim();
    const packed = readFileSync(path.join(root, ".git", "packed-refs"), "utf8");
    const line = packed.split("\n").find((l) => l.endsWith(` ${ref}`));
    return line ? line.split(" ")[0] : null;
  } catch {
    return null;
  }
}

export function machineInfo() {
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((v) => Number(v.toFixed(2))),
  };
}

/** The ids of the running processes, from Linux's /proc (none elsewhere). */
function procPids() {
  try {
    return readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
}

/**
 * Servers this benchmark did not start: workerd, redis-server or a Quirrel left running by an earlier run (or a
 * `npm start` in another terminal). One left idle still takes its share of the 2 cores: on 2026-12-04 a leftover
 * made a 1,000/s run refuse 146–662 publishes and answer p50 54–103 ms instead of 0 and 9–12 ms.
 */
export function strayServers() {
  const out = [];
  for (const pid of procPids()) {
    if (Number(pid) === process.pid) continue;
    let cmd;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    } catch {
      continue;
    }
    const line = cmd.join(" ");
    if (/\bworkerd serve\b|\bredis-server\b|quirrel/.test(line)) out.push({ pid: Number(pid), command: line.slice(0, 60) });
  }
  return out;
}

/** Every process of a process group, as { pid, command, fields } (fields[0] is /proc stat field 3, the state). */
function groupStats(pgid) {
  const out = [];
  for (const pid of procPids()) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const close = stat.lastIndexOf(")");
    const fields = stat.slice(close + 2).split(" ");
    // pgrp is stat field 5.
    if (Number(fields[2]) === pgid) out.push({ pid: Number(pid), command: stat.slice(stat.indexOf("(") + 1, close), fields });
  }
  return out;
}

/**
 * CPU seconds used so far by each command of a process group, e.g. { node: 12.3, workerd: 40.1 } (Linux /proc;
 * an empty object elsewhere). The difference of two readings shows where a measurement's CPU went.
 */
export function groupCpu(pgid) {
  const out = {};
  for (const { command, fields } of groupStats(pgid)) {
    // utime and stime are stat fields 14 and 15.
    const seconds = (Number(fields[11]) + Number(fields[12])) / 100;
    out[command] = Math.round(((out[command] ?? 0) + seconds) * 100) / 100;
  }
  return out;
}

/** The processes of a process group, as { pid, command } (Linux /proc; empty elsewhere). */
export function groupMembers(pgid) {
  return groupStats(pgid).map(({ pid, command }) => ({ pid, command }));
}

/**
 * CPU seconds used so far by every process of the process groups `groups` (each server runs in a group of its own:
 * Boomerang's launcher and its workerd; Quirrel's node; redis-server). Null where /proc is missing.
 */
export function groupCpuSeconds(groups) {
  if (!existsSync("/proc/self/stat")) return null;
  return groups.reduce((sum, pgid) => sum + Object.values(groupCpu(pgid)).reduce((a, v) => a + v, 0), 0);
}

/** Busy CPU seconds of the whole machine so far (/proc/stat: everything but idle and iowait), or null. */
function machineBusySeconds() {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0)) / 100;
  } catch {
    return null;
  }
}

/**
 * Waits until the whole machine is quiet: less than `maxCores` busy over one second (everything counted, this
 * process too), for at most `timeoutS`. Work a server defers past its load (a Redis AOF rewrite, a sweep) then does
 * not land in the next measurement. Returns the seconds waited and the last reading, in cores
 * (null where /proc/stat cannot be read).
 */
export async function waitForQuiet({ maxCores = 0.3, timeoutS = 30 } = {}) {
  const start = performance.now();
  let cores = null;
  for (;;) {
    const b0 = machineBusySeconds();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const b1 = machineBusySeconds();
    if (b0 === null || b1 === null) return { waitedS: (performance.now() - start) / 1000, cores: null };
    cores = (b1 - b0) / ((performance.now() - t0) / 1000);
    const waitedS = (performance.now() - start) / 1000;
    if (cores < maxCores || waitedS >= timeoutS) return { waitedS, cores };
  }
}

/**
 * A reading for otherCores(): the machine's busy CPU, this process's CPU and that of the given process groups
 * (the servers this benchmark started).
 */
export function cpuSample(pgids) {
  const u = process.cpuUsage();
  let groups = 0;
  for (const pgid of pgids) for (const v of Object.values(groupCpu(pgid))) groups += v;
  return { at: performance.now(), busy: machineBusySeconds(), self: (u.user + u.system) / 1e6, groups };
}

/**
 * How many cores other processes (not this benchmark, not its servers) used between two cpuSample readings:
 * the benchmark's numbers depend on it on a shared machine. Null where /proc is missing.
 */
export function otherCores(a, b) {
  if (a.busy === null || b.busy === null) return null;
  const wall = (b.at - a.at) / 1000;
  if (wall <= 0) return null;
  const others = b.busy - a.busy - (b.self - a.self) - (b.groups - a.groups);
  return Math.round(Math.max(0, others / wall) * 100) / 100;
}

/** b − a per command, for two groupCpu readings. */
export function cpuDelta(a, b) {
  const out = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out[k] = Math.round(((b[k] ?? 0) - (a[k] ?? 0)) * 100) / 100;
  return out;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * One benchmark run. Owns the work directory and every process group started through it; `finish()` (or a
 * signal, or the time limit) stops them all and removes the work directory.
 */
/** The base62 alphabet of message ids (src/core/ids.ts): digits, then upper case, then lower case. */
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Characters of the creation time at the start of a message id (src/core/ids.ts TIME_CHARS). */
const TIME_CHARS = 7;

/** Unix ms as the 7 base62 characters that start a message id made then (src/core/ids.ts timeChars). */
export function timeChars(ms) {
  let n = Math.max(0, Math.floor(ms));
  let out = "";
  for (let i = 0; i < TIME_CHARS; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** The same 7 characters as an SQL expression of an integer expression `ms` (SQLite has no base62 function). */
function timeCharsSql(ms) {
  const chars = [];
  for (let k = TIME_CHARS - 1; k >= 0; k--) chars.push(`substr('${BASE62}', (${ms}) / ${62 ** k} % 62 + 1, 1)`);
  return chars.join(" || ");
}

/**
 * The id of seeded message i (see Bench.seedFinished): its creation time in front, as real ids have it, then
 * "seed" and i in 15 digits, 19 characters in all like the random part of a real id.
 */
export function seedMessageId(i, t0, stepMs) {
  return `msg_${timeChars(t0 + i * stepMs)}seed${String(i).padStart(15, "0")}`;
}

/**
 * SQL that inserts finished messages [from, to) of `tenant`, each with its log of 3 entries (CREATED, ACTIVE,
 * DELIVERED) in its own row (see Bench.seedFinished). The ids are those of seedMessageId, built in SQL.
 */
function seedSql({ from, to, tenant, t0, stepMs }) {
  const rows = `WITH RECURSIVE seq(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM seq WHERE i < ${to - 1}),
  r(i, c) AS (SELECT i, ${t0} + i * ${stepMs} FROM seq)`;
  const id = `'msg_' || ${timeCharsSql("c")} || printf('seed%015d', i)`;
  // Each entry is anchored at its message's creation (all are within the 30 s log window of it): no log marks.
  const log = `json_array(json_object('t', c, 'a', c, 's', 'CREATED'), json_object('t', c + 5, 'a', c, 's', 'ACTIVE'),
    json_object('t', c + 10, 'a', c, 's', 'DELIVERED', 'c', 200))`;
  return `-- Boomerang benchmark seed: ${to - from} finished messages (${from}..${to - 1}), each with 3 log entries in its row.
INSERT INTO messages (id, tenant_id, kind, url, method, headers, body, max_retries, not_before, created_at,
  state, retried, due_at, finished_at, anchor_at, watch, log)
${rows}
SELECT ${id}, '${tenant}', 'message', 'http://127.0.0.1:9/seeded/' || i, 'POST', '{"Content-Type":["text/plain"]}',
  CAST('a seeded message body of about sixty-four bytes, never delivered.' AS BLOB), 3, 0, c,
  'DELIVERED', 0, c, c + 15, c, 0, ${log}
FROM r;
`;
}

/** Bytes under a folder (the size of a local state). */
export function dirBytes(dir) {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    const st = statSync(full);
    total += st.isDirectory() ? dirBytes(full) : st.size;
  }
  return total;
}

/**
 * Copies the server's sources (SNAPSHOT_ENTRIES of `source`, without state folders) to `appDir`, with node_modules
 * linked, so that edits made while a benchmark runs change neither the code under test nor a `wrangler dev` that
 * watches it. Returns `appDir` and a fingerprint of the files copied.
 */
export function snapshotTree(appDir, source = root) {
  for (const entry of SNAPSHOT_ENTRIES) {
    const from = path.join(source, entry);
    if (existsSync(from)) {
      cpSync(from, path.join(appDir, entry), {
        recursive: true,
        filter: (src) => !src.split(path.sep).includes(".wrangler"),
      });
    }
  }
  symlinkSync(path.join(root, "node_modules"), path.join(appDir, "node_modules"), "dir");
  const hash = createHash("sha256");
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else hash.update(`${path.relative(appDir, full)}\0`).update(readFileSync(full));
    }
  };
  for (const entry of SNAPSHOT_ENTRIES) {
    const full = path.join(appDir, entry);
    if (!existsSync(full)) continue;
    if (statSync(full).isDirectory()) walk(full);
    else hash.update(`${entry}\0`).update(readFileSync(full));
  }
  return { appDir, fingerprint: hash.digest("hex").slice(0, 16) };
}

export class Bench {
  constructor(name, opts) {
    this.name = name;
    this.opts = opts;
    this.startedAt = now();
    this.stamp = new Date(this.startedAt).toISOString().slice(0, 19).replace(/:/g, "-");
    this.workDir = path.join(root, ".wrangler", `bench-${name}-${this.stamp}-${process.pid}`);
    /** wrangler appends every log line (debug included) to a file; keep it here, not in the user's config folder. */
    this.wranglerLogDir = path.join(this.workDir, "wrangler-logs");
    this.resultsDir = path.join(root, "bench", "results");
    this.interrupted = false;
    /** Live process groups: pgid → label. */
    this.groups = new Map();
    /** Groups being stopped on purpose (their exit is expected). */
    this.stopping = new Set();
    /** Extra cleanup steps (closing servers, agents), run in reverse order. */
    this.cleanups = [];
    this.cleaning = null;
    this.keepState = opts["keep-state"] === true;
    mkdirSync(this.workDir, { recursive: true });

    process.on("exit", () => {
      for (const pgid of this.groups.keys()) signalGroup(pgid, "SIGKILL");
      if (!this.keepState) rmSync(this.workDir, { recursive: true, force: true });
    });
    const onSignal = (signal) => {
      if (this.interrupted) {
        for (const pgid of this.groups.keys()) signalGroup(pgid, "SIGKILL");
        process.exit(130);
      }
      this.interrupted = true;
      this.warn(`${signal}: stopping everything this benchmark started (Ctrl-C again to kill at once)`);
      this.cleanup().finally(() => process.exit(130));
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    const strays = strayServers();
    if (strays.length) {
      this.warn(
        `already running before this benchmark, and sharing the CPU with it: ${strays.map((p) => `${p.pid} (${p.command})`).join(", ")}. ` +
          "Figures will be low; stop them first (kill <pid>).",
      );
    }
    process.on("uncaughtException", (err) => {
      console.error(`[${this.name}] uncaught error:`, err);
      this.cleanup().finally(() => process.exit(1));
    });
    process.on("unhandledRejection", (err) => {
      console.error(`[${this.name}] unhandled rejection:`, err);
      this.cleanup().finally(() => process.exit(1));
    });
  }

  elapsed() {
    return `${((now() - this.startedAt) / 1000).toFixed(1).padStart(6)}s`;
  }

  log(msg) {
    console.log(`[${this.name} ${this.elapsed()}] ${msg}`);
  }

  warn(msg) {
    console.log(`[${this.name} ${this.elapsed()}] !!! ${msg}`);
  }

  /** Throws when the run was interrupted: long loops call this between steps. */
  check() {
    if (this.interrupted) throw new Error("interrupted");
  }

  onCleanup(fn) {
    this.cleanups.push(fn);
  }

  /** Kills every process group after `minutes` (the benchmark then exits 1). */
  setTimeLimit(minutes) {
    const timer = setTimeout(() => {
      this.warn(`hard time limit of ${minutes} min reached; stopping`);
      this.interrupted = true;
      this.cleanup().finally(() => process.exit(1));
    }, minutes * 60_000);
    timer.unref();
    this.onCleanup(() => clearTimeout(timer));
  }

  async stopGroup(pgid) {
    const label = this.groups.get(pgid) ?? `process group ${pgid}`;
    this.stopping.add(pgid);
    if (!groupAlive(pgid)) {
      this.groups.delete(pgid);
      return;
    }
    this.log(`stopping ${label} …`);
    signalGroup(pgid, "SIGTERM");
    const until = now() + 5000;
    while (groupAlive(pgid) && now() < until) await sleep(100);
    if (groupAlive(pgid)) {
      this.warn(`${label} did not stop within 5 s of SIGTERM; sending SIGKILL`);
      signalGroup(pgid, "SIGKILL");
      const killUntil = now() + 3000;
      while (groupAlive(pgid) && now() < killUntil) await sleep(100);
    }
    this.groups.delete(pgid);
  }

  cleanup() {
    if (this.cleaning) return this.cleaning;
    this.cleaning = (async () => {
      for (const fn of [...this.cleanups].reverse()) {
        try {
          await fn();
        } catch (err) {
          this.warn(`cleanup step failed: ${describeError(err)}`);
        }
      }
      for (const pgid of [...this.groups.keys()]) await this.stopGroup(pgid);
      if (!this.keepState) rmSync(this.workDir, { recursive: true, force: true });
      else this.log(`kept the work directory ${path.relative(root, this.workDir)}`);
    })();
    return this.cleaning;
  }

  /** Size in bytes of wrangler's debug log(s) so far (what the dev proxy wrote while we measured). */
  wranglerLogBytes() {
    if (!existsSync(this.wranglerLogDir)) return 0;
    let total = 0;
    for (const f of readdirSync(this.wranglerLogDir)) total += statSync(path.join(this.wranglerLogDir, f)).size;
    return total;
  }

  /** The environment of every wrangler process: offline, and its debug log inside the work directory. */
  wranglerEnv(extra = {}) {
    return { ...process.env, ...OFFLINE_ENV, WRANGLER_LOG_PATH: this.wranglerLogDir, ...extra };
  }

  /**
   * Copies the sources into the work directory so that edits made to the working tree while the benchmark runs
   * neither change the code under test nor make `wrangler dev` reload. `source` is the tree to copy (this one by
   * default), `name` the folder it goes to. Returns its root and a fingerprint.
   */
  snapshotSources(source = root, name = "app") {
    return snapshotTree(path.join(this.workDir, name), source);
  }

  /**
   * Starts a command in its own process group (so one signal stops it and everything it spawned).
   * Keeps the last 200 output lines; `onLine` sees each line.
   */
  spawnGroup(label, command, args, { cwd, env, onLine } = {}) {
    const child = spawn(command, args, { cwd: cwd ?? root, env: env ?? process.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    if (child.pid === undefined) throw new Error(`could not start ${label}`);
    this.groups.set(child.pid, label);
    const tail = [];
    const read = (stream) => {
      let buffered = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        buffered += chunk;
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) {
          tail.push(line);
          if (tail.length > 200) tail.shift();
          if (onLine) onLine(line);
        }
      });
    };
    read(child.stdout);
    read(child.stderr);
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal)));
    return { child, pid: child.pid, tail, exited, label };
  }

  /** Runs a command to completion (bounded by timeoutMs); resolves with its exit code and output. */
  async runCommand(label, command, args, { cwd, env, timeoutMs = 600_000 } = {}) {
    const proc = this.spawnGroup(label, command, args, { cwd, env });
    const out = [];
    proc.child.stdout.on("data", (c) => out.push(String(c)));
    proc.child.stderr.on("data", (c) => out.push(String(c)));
    const timer = setTimeout(() => {
      this.warn(`${label} ran longer than ${Math.round(timeoutMs / 1000)} s; killing it`);
      signalGroup(proc.pid, "SIGKILL");
    }, timeoutMs);
    const code = await proc.exited;
    clearTimeout(timer);
    this.groups.delete(proc.pid);
    return { code, output: out.join("") };
  }

  /** `wrangler <args>` from `appDir`, offline, bounded; throws with its output when it fails. */
  async wrangler(appDir, args, { timeoutMs = 600_000, label } = {}) {
    const bin = path.join(appDir, "node_modules", ".bin", "wrangler");
    const r = await this.runCommand(label ?? `wrangler ${args[0]} ${args[1] ?? ""}`.trim(), bin, args, { cwd: appDir, env: this.wranglerEnv(), timeoutMs });
    if (r.code !== 0) throw new Error(`wrangler ${args.join(" ")} failed (${r.code}):\n${r.output.slice(-3000)}`);
    return r.output;
  }

  /** Runs SQL against a local state with `wrangler d1 execute --json`; resolves with the statement results. */
  async d1Command(appDir, persistDir, sql) {
    const out = await this.wrangler(appDir, ["d1", "execute", "DB", "--local", "--persist-to", persistDir, "--command", sql, "--json"], {
      timeoutMs: 300_000,
      label: "wrangler d1 execute",
    });
    const start = out.indexOf("[");
    const end = out.lastIndexOf("]");
    if (start < 0 || end < start) throw new Error(`no JSON in wrangler's output:\n${out.slice(-1000)}`);
    return JSON.parse(out.slice(start, end + 1));
  }

  /**
   * A fresh local state (migrations applied) seeded with `size` finished messages of `tenant`, each one row with
   * its log of 3 entries (CREATED, ACTIVE, DELIVERED) in it: message i is created at t0 + i × stepMs, with an id
   * made at that time (seedMessageId), and finished 15 ms later. Inserted by a recursive CTE in chunks of `chunk`
   * messages, with progress. Resolves with { persistDir, seedSeconds, diskBytes } after checking the count and the
   * ids of the first and last message.
   */
  async seedFinished({ appDir, persistDir, size, chunk, tenant, t0, stepMs, label }) {
    const started = now();
    this.log(`${label}: applying migrations …`);
    await this.wrangler(appDir, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir], { timeoutMs: 180_000, label: "wrangler d1 migrations apply" });
    const seedStart = now();
    for (let from = 0; from < size; from += chunk) {
      this.check();
      const to = Math.min(size, from + chunk);
      const file = path.join(this.workDir, `seed-${path.basename(persistDir)}-${from}.sql`);
      writeFileSync(file, seedSql({ from, to, tenant, t0, stepMs }));
      const c0 = now();
      await this.wrangler(appDir, ["d1", "execute", "DB", "--local", "--persist-to", persistDir, "--file", file, "--yes"], {
        timeoutMs: 900_000,
        label: "wrangler d1 execute (seed)",
      });
      // A message is one row (its log is in it).
      const rate = ((to - from) * 1000) / Math.max(1, now() - c0);
      this.log(`${label}: seeded ${fmt(to)}/${fmt(size)} messages at ${fmt(rate)} rows/s, ${((now() - seedStart) / 1000).toFixed(1)} s so far`);
    }
    const counts = await this.d1Command(
      appDir,
      persistDir,
      "SELECT (SELECT count(*) FROM messages) AS messages, (SELECT count(*) FROM log_marks) AS marks, " +
        "(SELECT id FROM messages ORDER BY id LIMIT 1) AS first_id, (SELECT id FROM messages ORDER BY id DESC LIMIT 1) AS last_id",
    );
    const row = counts[0]?.results?.[0] ?? {};
    if (Number(row.messages) !== size || Number(row.marks) !== 0) {
      throw new Error(`${label}: expected ${size} messages and no log marks, found ${JSON.stringify(row)}`);
    }
    // Pruning finds expired messages by the time in their ids: the seeded ids must carry their creation times.
    if (size > 0 && (row.first_id !== seedMessageId(0, t0, stepMs) || row.last_id !== seedMessageId(size - 1, t0, stepMs))) {
      throw new Error(`${label}: the seeded ids are not ${seedMessageId(0, t0, stepMs)} … ${seedMessageId(size - 1, t0, stepMs)}: ${JSON.stringify(row)}`);
    }
    const diskBytes = dirBytes(persistDir);
    this.log(`${label}: ready (${fmt(row.messages)} messages, ${fmt(row.messages * 3)} log entries in their rows, ${fmt(diskBytes / 2 ** 20)} MiB on disk) after ${((now() - started) / 1000).toFixed(1)} s`);
    return { persistDir, seedSeconds: Math.round((now() - seedStart) / 100) / 10, diskBytes };
  }

  /**
   * Boomerang through scripts/dev.mjs (from the snapshot; quiet), or with `lean` through scripts/start.mjs (`npm
   * start`), on 127.0.0.1:`port` with its state in `persistDir`; `vars` become `--var KEY:VALUE`. Resolves once it
   * prints "ready in".
   */
  async startBoomerang({ appDir, persistDir, port, vars = {}, label = "Boomerang", devArgs = [], lean = false }) {
    mkdirSync(persistDir, { recursive: true });
    const script = lean ? "start.mjs" : "dev.mjs";
    const args = [path.join(appDir, "scripts", script), "--port", String(port), "--ip", HOST, "--persist-to", persistDir, ...(lean ? [] : ["--quiet"]), ...devArgs];
    for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
    this.log(`starting ${label} (scripts/${script}) on ${HOST}:${port}, state in ${path.relative(root, persistDir)} …`);
    const { proc, readyAt, startupMs } = await this.spawnUntilReady(label, args, { cwd: appDir, readyLine: "ready in" });
    return { base: `http://${HOST}:${port}`, port, pid: proc.pid, readyAt, startupMs, tail: proc.tail, stop: () => this.stopGroup(proc.pid) };
  }

  /**
   * Starts `node <args>` in its own process group and resolves once a line of its output contains `readyLine`.
   * If it exits or stays silent for STARTUP_TIMEOUT_MS, it is stopped and the error carries its last output; a
   * later unexpected exit is reported as a warning.
   */
  async spawnUntilReady(label, args, { cwd, readyLine }) {
    const t0 = now();
    let readyAt = 0;
    let resolveReady = () => {};
    const ready = new Promise((resolve) => (resolveReady = resolve));
    const proc = this.spawnGroup(label, process.execPath, args, {
      cwd,
      env: this.wranglerEnv(),
      onLine: (line) => {
        if (!readyAt && line.includes(readyLine)) {
          readyAt = now();
          resolveReady();
        }
      },
    });
    const outcome = await Promise.race([
      ready.then(() => "ready"),
      proc.exited.then((code) => `exited (${code})`),
      sleep(STARTUP_TIMEOUT_MS).then(() => "timeout"),
    ]);
    if (outcome !== "ready") {
      await this.stopGroup(proc.pid);
      throw new Error(`${label} did not become ready (${outcome}):\n${proc.tail.slice(-30).join("\n")}`);
    }
    proc.exited.then((code) => {
      if (!this.cleaning && !this.stopping.has(proc.pid)) this.warn(`${label} exited unexpectedly (${code}):\n${proc.tail.slice(-20).join("\n")}`);
    });
    this.log(`${label} ready after ${((readyAt - t0) / 1000).toFixed(1)} s`);
    return { proc, readyAt, startupMs: readyAt - t0 };
  }

  /**
   * The bare "hello" worker (bench/hello), served the way scripts/dev.mjs serves Boomerang:
   * `wrangler dev --config bench/hello/wrangler.toml --port <p> --ip 127.0.0.1`, same log level and inspector
   * setting, offline. Resolves once GET / answers "hello".
   */
  async startHello({ appDir, port }) {
    const bin = path.join(appDir, "node_modules", ".bin", "wrangler");
    const args = [
      "dev",
      "--config", path.join("bench", "hello", "wrangler.toml"),
      "--port", String(port),
      "--ip", HOST,
      "--persist-to", path.join(this.workDir, "hello-state"),
      "--show-interactive-dev-session=false",
      "--inspector-port", "0",
      "--log-level", "warn",
    ];
    this.log(`starting the bare hello worker (wrangler dev --config bench/hello/wrangler.toml) on ${HOST}:${port} …`);
    const t0 = now();
    const proc = this.spawnGroup("the hello worker", bin, args, { cwd: appDir, env: this.wranglerEnv() });
    const base = `http://${HOST}:${port}`;
    const agent = new http.Agent({ keepAlive: false });
    try {
      for (;;) {
        this.check();
        if (proc.child.exitCode !== null) throw new Error(`the hello worker exited (${proc.child.exitCode}):\n${proc.tail.slice(-30).join("\n")}`);
        if (now() - t0 > STARTUP_TIMEOUT_MS) throw new Error(`the hello worker did not answer within ${STARTUP_TIMEOUT_MS / 1000} s`);
        const r = await httpRequest({ url: `${base}/`, agent, timeoutMs: 2000 }).catch(() => null);
        if (r && r.status === 200 && r.body === "hello") break;
        await sleep(200);
      }
    } catch (err) {
      await this.stopGroup(proc.pid);
      throw err;
    } finally {
      agent.destroy();
    }
    this.log(`hello worker ready after ${((now() - t0) / 1000).toFixed(1)} s`);
    return { base, port, pid: proc.pid, startupMs: now() - t0, stop: () => this.stopGroup(proc.pid) };
  }

  /**
   * A worker served by Miniflare's API in a child process (`node bench/lib.mjs --serve-miniflare <options>`):
   * the same workerd, but no `wrangler dev` around it (no dev proxy, no inspector). For comparisons only.
   * Resolves once it listens.
   */
  async startMiniflare({ label, options }) {
    const args = [fileURLToPath(import.meta.url), "--serve-miniflare", JSON.stringify(options)];
    const port = publicPort(options);
    this.log(`starting ${label} (Miniflare API, no wrangler dev) on ${HOST}:${port} …`);
    const { proc, readyAt, startupMs } = await this.spawnUntilReady(label, args, { cwd: root, readyLine: "miniflare ready" });
    return { base: `http://${HOST}:${port}`, port, pid: proc.pid, readyAt, startupMs, tail: proc.tail, stop: () => this.stopGroup(proc.pid) };
  }

  /**
   * Miniflare options for Boomerang as `npm start` serves it (scripts/lean.mjs of the snapshot in `appDir`), with
   * the vars scripts/start.mjs sets. Migrations are applied first.
   */
  async boomerangMiniflareOptions({ appDir, persistDir, port, vars = {} }) {
    await this.wrangler(appDir, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir], { timeoutMs: 180_000, label: "wrangler d1 migrations apply" });
    const { leanOptions } = await import(pathToFileURL(path.join(appDir, "scripts", "lean.mjs")).href);
    this.log("bundling Boomerang (scripts/lean.mjs: wrangler deploy --dry-run) …");
    const fail = (msg) => {
      throw new Error(msg);
    };
    const all = { DEV_MODE: "true", ALLOW_PRIVATE_DESTINATIONS: "true", DAILY_MESSAGE_QUOTA: "off", BURST_RPS: "off", MAX_QUEUE_LAG: "1s", ...vars };
    return leanOptions({ root: appDir, env: this.wranglerEnv(), persist: persistDir, vars: all, ip: HOST, port, fail });
  }

  /**
   * The bare hello worker and Boomerang, both served the same way: `server` "wrangler" (wrangler dev; Boomerang
   * through scripts/dev.mjs, as `npm run dev` does) or "lean" (Boomerang through scripts/start.mjs as `npm start` does,
   * no sweeper; for comparison). Returns { hello, boomerang, servedBy }.
   */
  async startPair({ server, appDir, persistDir, vars = {} }) {
    if (server === "wrangler") {
      const hello = await this.startHello({ appDir, port: await freePort() });
      const boomerang = await this.startBoomerang({ appDir, persistDir, port: await freePort(), vars });
      return {
        hello,
        boomerang,
        servedBy: "wrangler dev (Boomerang through scripts/dev.mjs --quiet; hello through wrangler dev --config bench/hello/wrangler.toml --log-level warn)",
      };
    }
    const hello = await this.startMiniflare({
      label: "the hello worker",
      options: { name: "bench-hello", modules: true, scriptPath: path.join(appDir, "bench", "hello", "index.js"), compatibilityDate: "2026-04-20", ...servedOn(HOST, await freePort()) },
    });
    const boomerang = await this.startBoomerang({ appDir, persistDir, port: await freePort(), vars, lean: true, devArgs: ["--sweep-every", "0"] });
    return {
      hello,
      boomerang,
      servedBy: "lean: Boomerang through scripts/start.mjs (npm start: Miniflare's API, no dev proxy, no inspector; no sweeper); hello through Miniflare's API",
    };
  }

  /**
   * Every script ends the same way: runs `measure()` (which fills `result`; an error is recorded there and makes
   * the exit code 1), stops everything this bench started, stamps the end time and load, lets `report()` add the
   * summary from whatever was measured (after an error too), writes the results JSON and exits.
   */
  async finish(result, measure, report = () => {}) {
    let exitCode = 0;
    try {
      await measure();
      result.complete = true;
    } catch (err) {
      result.error = describeError(err);
      console.error(`[${this.name}] failed: ${result.error}`);
      exitCode = 1;
    } finally {
      await this.cleanup();
    }
    result.finishedAt = new Date().toISOString();
    result.loadAverageAtEnd = os.loadavg().map((v) => Number(v.toFixed(2)));
    report();
    const file = this.writeResults(result);
    this.log(`results written to ${path.relative(root, file)}`);
    process.exit(exitCode);
  }

  /** Writes the results JSON (with `samples`-style big arrays on one line each) and returns its path. */
  writeResults(result) {
    mkdirSync(this.resultsDir, { recursive: true });
    const file = path.join(this.resultsDir, `${this.name}-${this.stamp}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
    return file;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP: a keep-alive client for 127.0.0.1 only, a bounded load loop, a destination server

/**
 * One HTTP request with a timeout; resolves with status, headers, body (text) and the time it took (ms, from
 * before the request was written until the whole answer was read). Refuses anything but 127.0.0.1.
 */
export function httpRequest({ url, method = "GET", headers = {}, body, agent, timeoutMs = REQUEST_TIMEOUT_MS }) {
  const u = new URL(url);
  if (u.hostname !== HOST) return Promise.reject(new Error(`refusing to send a request to ${u.hostname}`));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const payload = body === undefined ? undefined : Buffer.from(body);
    const h = { ...headers };
    if (payload !== undefined) h["content-length"] = String(payload.length);
    const req = http.request(u, { method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), ms: performance.now() - t0, start: t0 }),
      );
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** A request to the Boomerang API with the dev token; throws on a non-2xx answer; returns the parsed JSON. */
export async function api(base, agent, method, pathname, { headers = {}, body, timeoutMs } = {}) {
  const r = await httpRequest({
    url: base + pathname,
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...headers },
    body: body ?? (method === "POST" ? "" : undefined),
    agent,
    timeoutMs,
  });
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${pathname} answered ${r.status}: ${r.body.slice(0, 300)}`);
  return r.body ? JSON.parse(r.body) : null;
}

/**
 * Idle keep-alive connections are closed by the client after this long: 4 s, what fetch in Node does (undici's
 * default keep-alive timeout), and so what the official SDK does. workerd closes a connection idle for 5 s and strips
 * Keep-Alive hints from responses; a client that keeps idle connections longer may send a request on one at the
 * moment the server closes it, and meet a reset that no server code sent (docs/architecture.md, "Push-back").
 */
export const CLIENT_IDLE_MS = 4_000;

/**
 * A keep-alive agent for load against a server: every request of `httpRequest` sets its own time limit, and a
 * connection left idle in the pool for CLIENT_IDLE_MS is closed (Node's agent applies `timeout` to free sockets).
 */
export function keepAliveAgent(options = {}) {
  return new http.Agent({ keepAlive: true, keepAliveMsecs: 1000, timeout: CLIENT_IDLE_MS, ...options });
}

/**
 * Closed-loop load: `concurrency` workers on one keep-alive agent, each sending a request as soon as its last
 * one finished, until `durationMs` has passed or `maxRequests` were started (both bounds always apply).
 * `makeRequest(i)` returns { url, method, headers, body } for the i-th request.
 * Counts only 2xx answers as done; the rate is done ÷ the time from the first start to the last answer.
 */
export async function loadLoop({ makeRequest, concurrency, durationMs, maxRequests, timeoutMs = REQUEST_TIMEOUT_MS, isStopped = () => false, onResponse }) {
  const agent = keepAliveAgent({ maxSockets: concurrency });
  const latencies = [];
  const statuses = {};
  const errors = [];
  let started = 0;
  let ok = 0;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const worker = async () => {
    while (performance.now() < deadline && started < maxRequests && !isStopped()) {
      const i = started++;
      const spec = makeRequest(i);
      try {
        const r = await httpRequest({ ...spec, agent, timeoutMs });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status >= 200 && r.status <= 299) {
          ok += 1;
          latencies.push(r.ms);
          if (onResponse) onResponse(i, r);
        } else if (errors.length < 20) errors.push(`${r.status}: ${r.body.slice(0, 200)}`);
      } catch (err) {
        statuses.error = (statuses.error ?? 0) + 1;
        if (errors.length < 20) errors.push(describeError(err));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  return {
    concurrency,
    started,
    ok,
    failed: started - ok,
    elapsedMs: Math.round(elapsedMs),
    rps: elapsedMs > 0 ? (ok * 1000) / elapsedMs : 0,
    latencyMs: summarize(latencies),
    statuses,
    errors,
    wallStart: Date.now() - Math.round(elapsedMs),
  };
}

/**
 * A destination on 127.0.0.1 that answers 200 "ok" once the request body is read. `onArrival` gets
 * { at (Date.now() when the headers arrived), path, messageId, body } for every request.
 */
export function startDestination(bench, onArrival) {
  return new Promise((resolve, reject) => {
    const srv = http.createServer((req, res) => {
      const at = Date.now();
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok");
        onArrival({ at, path: req.url ?? "", messageId: String(req.headers["upstash-message-id"] ?? ""), body: Buffer.concat(chunks) });
      });
    });
    srv.keepAliveTimeout = 10_000;
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      bench.onCleanup(
        () =>
          new Promise((done) => {
            srv.closeAllConnections();
            srv.close(() => done());
          }),
      );
      resolve({ server: srv, port, base: `http://${HOST}:${port}` });
    });
  });
}

/**
 * Waits until `done()` is true, `maxMs` passed, or nothing changed for `stallMs` (`progress()` returns a number
 * that grows while work is happening). Logs every `everyMs`. Resolves with "done", "timeout" or "stalled".
 */
export async function waitFor(bench, { done, progress, maxMs, stallMs = maxMs, everyMs = 2000, describe }) {
  const t0 = now();
  let last = progress();
  let lastChange = t0;
  let lastLog = t0;
  for (;;) {
    if (done()) return "done";
    bench.check();
    const t = now();
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = t;
    }
    if (t - t0 >= maxMs) return "timeout";
    if (t - lastChange >= stallMs) return "stalled";
    if (describe && t - lastLog >= everyMs) {
      lastLog = t;
      bench.log(describe());
    }
    await sleep(50);
  }
}

/**
 * The server's own timestamps, from its logs (GET /v2/logs, oldest first from `fromMs`): per message id, when it
 * accepted it (CREATED), when the consumer claimed it (ACTIVE) and when the attempt was recorded (DELIVERED).
 */
export async function serverTimes(base, agent, fromMs, maxPages = 50) {
  const times = new Map();
  let cursor = null;
  for (let page = 0; page < maxPages; page++) {
    const q = new URLSearchParams({ fromDate: String(Math.max(0, fromMs)), count: "1000", order: "asc" });
    if (cursor) q.set("cursor", cursor);
    const body = await api(base, agent, "GET", `/v2/logs?${q}`);
    const entries = body && Array.isArray(body.logs) ? body.logs : [];
    for (const e of entries) {
      if (typeof e.messageId !== "string" || typeof e.time !== "number") continue;
      const t = times.get(e.messageId) ?? { created: null, active: null, delivered: null };
      if (e.state === "CREATED" && t.created === null) t.created = e.time;
      else if (e.state === "ACTIVE" && t.active === null) t.active = e.time;
      else if (e.state === "DELIVERED" && t.delivered === null) t.delivered = e.time;
      times.set(e.messageId, t);
    }
    cursor = body && typeof body.cursor === "string" ? body.cursor : null;
    if (!cursor) break;
  }
  return times;
}

// ---------------------------------------------------------------------------------------------------------------
// `node bench/lib.mjs --serve-miniflare <options JSON>`: serves one worker with Miniflare's API until SIGTERM.

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === "--serve-miniflare") {
  const options = JSON.parse(process.argv[3] ?? "{}");
  const { Miniflare } = await import("miniflare");
  const mf = new Miniflare(options);
  const url = await mf.ready;
  console.log(`miniflare ready on ${url.href}`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    mf.dispose().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
