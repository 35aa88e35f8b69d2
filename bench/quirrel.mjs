// Runs the open-source job queue Quirrel (npm package `quirrel`, exactly 1.14.1) on a local Redis 7 so that a
// benchmark can compare against it. Quirrel delivers each job as an HTTP POST to the job's endpoint URL.
//
// What this module gives a benchmark:
//   ensureQuirrel({ dir, log })          installs quirrel@1.14.1 into `dir` once; returns the server entry point
//   ensureRedisServer({ log })           finds `redis-server` (installs Debian's package when running as root)
//   startQuirrel({ dir, workDir, log })  starts Redis and Quirrel's production API server, creates a token,
//                                        and returns { base, port, pids, token, publish, stop, ... }
//   verifySignature(body, header, token) checks the `x-quirrel-signature` header of a delivery
//
// How Quirrel 1.14.1 is run here (read from node_modules/quirrel/dist/cjs/src/api/main.js and friends):
//   - The production server is `node node_modules/quirrel/dist/cjs/src/api/main.js`: one process holding both the
//     REST API (fastify) and the worker that delivers jobs. The `quirrel` CLI (cli.js) is the development server
//     with the interactive UI and cron detection, so it is not used.
//   - It is configured by environment variables: PORT, HOST, REDIS_URL, PASSPHRASES (colon-separated admin
//     passwords; setting it turns on token authentication and the /tokens routes), DISABLE_TELEMETRY (any
//     non-empty value turns off both the Plausible telemetry calls and Sentry), LOG_LEVEL (pino, default "trace").
//     Variables that must stay unset for a local benchmark, and are removed from the inherited environment:
//     RUNNING_IN_DOCKER (rewrites "localhost" to host.docker.internal), ENABLE_SSRF_PREVENTION (blocks private
//     addresses such as 127.0.0.1), POSTHOG_API_KEY, INCIDENT_RECEIVER_ENDPOINT, JWT_PUBLIC_KEY (would replace
//     the Redis-stored tokens by JWTs and remove the /tokens routes). dd-trace is only started when
//     DD_TRACE_ENABLED=true, so it is set to false. Nothing Vercel-specific is on the server side (the
//     @vercel/fetch-retry dependency is only used by Quirrel's client library).
//   - REST API: `PUT /tokens/:tokenId` with HTTP Basic auth (any user name, a passphrase as password) answers 201
//     with the token as plain text. `POST /queues/:endpoint` (endpoint = the URL-encoded destination URL) with
//     `Authorization: Bearer <token>` and a JSON body `{ "body": "<string>", "delay": <ms> }` answers 201 with the
//     job as JSON (`{ id, endpoint, body, runAt, ... }`). `GET /health` answers 200 `{"redis":"up"}`.
//   - Deliveries are `POST <endpoint>` with the job's body and these headers:
//       content-type: text/plain
//       x-quirrel-meta: JSON {"id","count","exclusive","retry","nextRepetition"}
//       x-quirrel-signature: "v=<ms timestamp>,d=<hex HMAC-SHA256 of (body + timestamp), keyed by the token>"
//     A 2xx answer acknowledges the job; anything else is retried per the job's `retry` schedule (404: not at all).
//     The worker uses node-fetch 2 without an agent, so it opens a new connection ("Connection: close") for every
//     delivery; its concurrency is fixed at 100 jobs when started through main.js.
//   - Surprise for benchmarks: the API has a rate limit of 10,000 requests per minute per Authorization header
//     (or per client IP without one), answering 429 beyond it, and main.js offers no setting for it. Pass
//     `rateLimitMax` to startQuirrel to raise it; this preloads a small file that only changes that number.
//
// Plain Node ESM, no dependencies beyond Node itself (Quirrel is installed into a separate directory).

import { spawn } from "node:child_process";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { accessSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const QUIRREL_VERSION = "1.14.1";
const HOST = "127.0.0.1";
/** Every request made to Quirrel gives up after this long. */
const REQUEST_TIMEOUT_MS = 15_000;
/** How long Redis and Quirrel may take to answer after being started. */
const STARTUP_TIMEOUT_MS = 60_000;
/** How many lines of each server's output are kept for error messages. */
const LOG_TAIL_LINES = 50;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const defaultLog = (msg) => console.log(`[quirrel] ${msg}`);

// ---------------------------------------------------------------------------------------------------------------
// Small process helpers

/** Runs a command to completion, printing a progress line every 10 s; rejects with the output's tail on failure. */
function runCommand(cmd, args, { env = process.env, log = defaultLog, label = cmd } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tail = new LineTail(LOG_TAIL_LINES);
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (chunk) => tail.push(chunk));
    child.stderr.on("data", (chunk) => tail.push(chunk));
    const ticker = setInterval(() => log(`${label}: still running (${Math.round((Date.now() - started) / 1000)} s)`), 10_000);
    child.on("error", (err) => {
      clearInterval(ticker);
      reject(new Error(`${label}: could not start ${cmd}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearInterval(ticker);
      if (code === 0) resolve(tail.text());
      else reject(new Error(`${label} failed (${signal ?? `exit code ${code}`}):\n${tail.text()}`));
    });
  });
}

/** Keeps the last `max` lines written to it. */
class LineTail {
  constructor(max) {
    this.max = max;
    this.lines = [];
    this.partial = "";
  }
  push(chunk) {
    const parts = (this.partial + chunk.toString("utf8")).split("\n");
    this.partial = parts.pop();
    for (const line of parts) this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  text() {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join("\n");
  }
}

/** Finds an executable by name on PATH (and in the sbin folders, which a non-login PATH may lack). */
function findExecutable(name) {
  const folders = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
  for (const folder of folders) {
    if (!folder) continue;
    const candidate = path.join(folder, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Asks the OS for a free TCP port on 127.0.0.1 (free right now; the caller binds it right after). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves when the child has exited, or after `ms` (whichever comes first); true if it exited. */
function waitForExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Sends a signal to a whole process group; ignores groups that are already gone. */
function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: nothing left in that group
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP helper

/** One HTTP request to 127.0.0.1; resolves { status, headers, text }. */
function request({ port, method, path: urlPath, headers = {}, body, agent }) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    const req = http.request(
      {
        host: HOST,
        port,
        method,
        path: urlPath,
        agent,
        headers: payload ? { ...headers, "content-length": payload.length } : headers,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Installation

/**
 * Installs quirrel@1.14.1 into `dir` unless it is already there, and returns the path of the production server's
 * entry point (`<dir>/node_modules/quirrel/dist/cjs/src/api/main.js`), to be run with `node`.
 * Install scripts are skipped: the only ones in the tree belong to dd-trace's optional native add-ons and
 * protobufjs, none of which the server needs (dd-trace stays off).
 */
export async function ensureQuirrel({ dir, log = defaultLog }) {
  if (!dir) throw new Error("ensureQuirrel: `dir` is required");
  dir = path.resolve(dir);
  const packageDir = path.join(dir, "node_modules", "quirrel");
  const entry = path.join(packageDir, "dist", "cjs", "src", "api", "main.js");
  const installedVersion = () => {
    try {
      return JSON.parse(readFileSync(path.join(packageDir, "package.json"), "utf8")).version;
    } catch {
      return null;
    }
  };
  if (installedVersion() === QUIRREL_VERSION && existsSync(entry)) return entry;

  mkdirSync(dir, { recursive: true });
  log(`installing quirrel@${QUIRREL_VERSION} into ${dir} (takes about half a minute) ...`);
  const started = Date.now();
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  await runCommand(
    npm,
    ["install", "--prefix", dir, "--no-save", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock", `quirrel@${QUIRREL_VERSION}`],
    { env: { ...process.env, npm_config_update_notifier: "false" }, log, label: "npm install quirrel" },
  );
  const version = installedVersion();
  if (version !== QUIRREL_VERSION || !existsSync(entry)) {
    throw new Error(`npm install finished but ${packageDir} holds version ${version ?? "none"} without ${entry}`);
  }
  log(`installed quirrel@${version} in ${Math.round((Date.now() - started) / 1000)} s`);
  return entry;
}

/**
 * Returns the path of `redis-server`. When it is missing and this process runs as root, installs Debian's
 * `redis-server` package (7.0.x on bookworm) with apt-get; otherwise throws an Error saying how to install it.
 * (Debian's package would normally start a system-wide Redis on port 6379; in containers with a policy-rc.d that
 * denies service starts it does not. Either way this module only uses its own Redis on its own port.)
 */
export async function ensureRedisServer({ log = defaultLog } = {}) {
  const found = findExecutable("redis-server");
  if (found) return found;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) {
    throw new Error(
      "redis-server (Redis 7) is not installed. Install it with `sudo apt-get install -y redis-server` " +
        "(Debian/Ubuntu), or put a redis-server 7.x binary on PATH, then run again.",
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  log("redis-server not found; installing Debian's redis-server package with apt-get ...");
  try {
    await runCommand("apt-get", ["install", "-y", "--no-install-recommends", "redis-server"], { env, log, label: "apt-get install redis-server" });
  } catch (firstError) {
    // Usually the package lists are missing or stale (fresh containers); refresh them once and retry.
    log(`apt-get install failed (${firstError.message.split("\n")[0]}); running apt-get update and retrying ...`);
    await runCommand("apt-get", ["update"], { env, log, label: "apt-get update" });
    await runCommand("apt-get", ["install", "-y", "--no-install-recommends", "redis-server"], { env, log, label: "apt-get install redis-server" });
  }
  const installed = findExecutable("redis-server");
  if (!installed) throw new Error("apt-get installed redis-server but no redis-server executable was found on PATH");
  log(`installed ${installed}`);
  return installed;
}

// ---------------------------------------------------------------------------------------------------------------
// Starting and stopping

/** A server process started in its own process group, with the tail of its output kept. */
function startServer(name, cmd, args, { env, cwd }) {
  const tail = new LineTail(LOG_TAIL_LINES);
  const child = spawn(cmd, args, { env, cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (chunk) => tail.push(chunk));
  child.stderr.on("data", (chunk) => tail.push(chunk));
  const server = { name, child, tail, spawnError: null };
  child.on("error", (err) => {
    server.spawnError = err;
  });
  return server;
}

/** Why a server is not usable any more (spawn error or exit), or null while it runs. */
function deathReason(server) {
  if (server.spawnError) return `${server.name} could not be started: ${server.spawnError.message}`;
  const { exitCode, signalCode } = server.child;
  if (exitCode !== null || signalCode !== null) {
    return `${server.name} exited (${signalCode ?? `exit code ${exitCode}`}). Last output:\n${server.tail.text()}`;
  }
  return null;
}

/** Polls `probe` until it returns true; fails early when the server dies, or after the timeout. */
async function waitUntilReady(server, probe, log) {
  const started = Date.now();
  let lastProgress = started;
  let lastError = "";
  for (;;) {
    const dead = deathReason(server);
    if (dead) throw new Error(dead);
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err.message;
    }
    const now = Date.now();
    if (now - started > STARTUP_TIMEOUT_MS) {
      throw new Error(`${server.name} did not answer within ${STARTUP_TIMEOUT_MS / 1000} s (${lastError}). Last output:\n${server.tail.text()}`);
    }
    if (now - lastProgress >= 10_000) {
      log(`waiting for ${server.name} (${Math.round((now - started) / 1000)} s) ...`);
      lastProgress = now;
    }
    await sleep(100);
  }
}

/** True when a Redis on `port` answers PING with PONG. */
function redisPing(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let answer = "";
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      answer += chunk.toString("utf8");
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
  });
}

/**
 * The file preloaded (node --require) into Quirrel when `rateLimitMax` is given. main.js calls
 * runQuirrel -> scheduler.createServer through the module's exports object, so replacing that export before
 * main.js runs changes only the rate limiter's `max` and leaves everything else as main.js sets it up.
 */
const RATE_LIMIT_PRELOAD = `// Written by bench/quirrel.mjs: raises Quirrel's API rate limit (10,000 requests/minute per client by default).
"use strict";
const scheduler = require(process.env.QUIRREL_BENCH_SCHEDULER_MODULE);
const originalCreateServer = scheduler.createServer;
const max = Number(process.env.QUIRREL_BENCH_RATE_LIMIT_MAX);
scheduler.createServer = (options) => originalCreateServer({ ...options, rateLimiter: { max } });
`;

/**
 * Starts Redis (AOF, fsync every second, no RDB snapshots) and Quirrel's production server, each in its own
 * process group, on free 127.0.0.1 ports, and creates an API token.
 *
 * Options: dir (where quirrel is installed), workDir (Redis data goes to workDir/redis), log,
 *   logLevel (Quirrel's pino LOG_LEVEL; default "warn", because Quirrel's own default "trace" logs several lines
 *   per job), rateLimitMax (see the top of this file; default: Quirrel's own 10,000 per minute).
 *
 * Returns { base, port, redisPort, pids, token, tokenId, publish, stop, logs }:
 *   publish({ url, body, delayMs, agent }) -> { status, id } (id is null unless Quirrel answered 201; then
 *     `error` holds the answer's text),
 *   stop() stops both servers (SIGTERM, then SIGKILL after 5 s),
 *   logs() returns the last lines of both servers' output.
 */
export async function startQuirrel({ dir, workDir, log = defaultLog, logLevel = "warn", rateLimitMax } = {}) {
  if (!workDir) throw new Error("startQuirrel: `workDir` is required");
  const entry = await ensureQuirrel({ dir, log });
  const redisBin = await ensureRedisServer({ log });

  const redisDir = path.resolve(workDir, "redis");
  mkdirSync(redisDir, { recursive: true });
  const servers = [];
  let stopped = false;

  // If the benchmark process exits without calling stop(), take the servers down with it.
  const killOnExit = () => {
    for (const server of servers) signalGroup(server.child.pid, "SIGKILL");
  };
  process.on("exit", killOnExit);

  async function stop() {
    if (stopped) return;
    stopped = true;
    // Quirrel first, so that it can close its Redis connections cleanly; then Redis (which flushes its AOF on
    // SIGTERM). Whatever is still alive after 5 s, including any AOF-rewrite child of Redis, gets SIGKILL.
    for (const server of [...servers].reverse()) {
      if (!server.child.pid) continue;
      signalGroup(server.child.pid, "SIGTERM");
      if (!(await waitForExit(server.child, 5000))) log(`${server.name} did not stop within 5 s; killing it`);
      signalGroup(server.child.pid, "SIGKILL");
      await waitForExit(server.child, 2000);
    }
    process.off("exit", killOnExit);
  }

  const logs = () => servers.map((server) => `--- ${server.name} (pid ${server.child.pid}) ---\n${server.tail.text()}`).join("\n");

  try {
    // Redis.
    const redisPort = await freePort();
    const redisArgs = [
      "--port", String(redisPort),
      "--bind", HOST,
      "--dir", redisDir,
      "--appendonly", "yes",
      "--appendfsync", "everysec",
      "--save", "",
      "--daemonize", "no",
      "--logfile", "",
    ];
    const redis = startServer("redis-server", redisBin, redisArgs, { env: process.env, cwd: redisDir });
    servers.push(redis);
    await waitUntilReady(redis, () => redisPing(redisPort), log);
    log(`redis-server ready on ${HOST}:${redisPort} (pid ${redis.child.pid}, data in ${redisDir})`);

    // Quirrel.
    const port = await freePort();
    const passphrase = randomBytes(18).toString("hex");
    const env = { ...process.env };
    for (const name of ["RUNNING_IN_DOCKER", "ENABLE_SSRF_PREVENTION", "POSTHOG_API_KEY", "INCIDENT_RECEIVER_ENDPOINT", "INCIDENT_RECEIVER_PASSPHRASE", "JWT_PUBLIC_KEY", "REDIS_TLS_CA_BASE64", "REDIS_TLS_CA_FILE", "SKIP_OWL_MIGRATIONS", "NODE_OPTIONS"]) {
      delete env[name];
    }
    Object.assign(env, {
      PORT: String(port),
      HOST,
      REDIS_URL: `redis://${HOST}:${redisPort}`,
      PASSPHRASES: passphrase,
      DISABLE_TELEMETRY: "1",
      DD_TRACE_ENABLED: "false",
      DD_INSTRUMENTATION_TELEMETRY_ENABLED: "false",
      LOG_LEVEL: logLevel,
      NODE_ENV: "production",
    });
    const nodeArgs = [];
    if (rateLimitMax !== undefined) {
      const preload = path.resolve(workDir, "quirrel-rate-limit.cjs");
      writeFileSync(preload, RATE_LIMIT_PRELOAD);
      env.QUIRREL_BENCH_SCHEDULER_MODULE = path.join(path.dirname(entry), "scheduler", "index.js");
      env.QUIRREL_BENCH_RATE_LIMIT_MAX = String(rateLimitMax);
      nodeArgs.push("--require", preload);
    }
    const quirrel = startServer("quirrel", process.execPath, [...nodeArgs, entry], { env, cwd: path.dirname(entry) });
    servers.push(quirrel);
    await waitUntilReady(
      quirrel,
      async () => {
        const res = await request({ port, method: "GET", path: "/health" });
        return res.status === 200 && JSON.parse(res.text).redis === "up";
      },
      log,
    );
    log(`quirrel ${QUIRREL_VERSION} ready on http://${HOST}:${port} (pid ${quirrel.child.pid})`);

    // A token, issued through the admin API (Basic auth: any user name, the passphrase as password). Deliveries
    // of jobs enqueued with it are signed with it (x-quirrel-signature).
    const tokenId = "bench";
    const created = await request({
      port,
      method: "PUT",
      path: `/tokens/${tokenId}`,
      headers: { authorization: `Basic ${Buffer.from(`admin:${passphrase}`).toString("base64")}` },
    });
    if (created.status !== 201 || !created.text) throw new Error(`PUT /tokens/${tokenId} answered ${created.status}: ${created.text}`);
    const token = created.text.trim();

    /** Enqueues one job for `url` through POST /queues/:endpoint. */
    async function publish({ url, body = "", delayMs, agent } = {}) {
      const job = { body: String(body) };
      if (delayMs) job.delay = delayMs;
      const res = await request({
        port,
        method: "POST",
        path: `/queues/${encodeURIComponent(url)}`,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(job),
        agent,
      });
      if (res.status === 201) return { status: res.status, id: JSON.parse(res.text).id };
      return { status: res.status, id: null, error: res.text };
    }

    return {
      base: `http://${HOST}:${port}`,
      port,
      redisPort,
      pids: servers.map((server) => server.child.pid),
      token,
      tokenId,
      publish,
      stop,
      logs,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Delivery signatures

/**
 * Checks an `x-quirrel-signature` header ("v=<ms timestamp>,d=<hex HMAC-SHA256(body + timestamp) keyed by the
 * token>"). Does not check the timestamp's age.
 */
export function verifySignature(body, header, token) {
  const match = /^v=(\d+),d=([0-9a-f]+)$/.exec(header ?? "");
  if (!match) return false;
  const expected = createHmac("sha256", token).update(String(body) + match[1]).digest();
  const given = Buffer.from(match[2], "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ---------------------------------------------------------------------------------------------------------------
// Self-test: node bench/quirrel.mjs --self-test [--dir <install dir>] [--keep]

function nearestRank(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

async function selfTest(argv) {
  const dirIndex = argv.indexOf("--dir");
  const dir = dirIndex >= 0 ? argv[dirIndex + 1] : path.join(os.tmpdir(), `bench-quirrel-${QUIRREL_VERSION}`);
  const keep = argv.includes("--keep");
  const workDir = mkdtempSync(path.join(os.tmpdir(), "quirrel-selftest-"));
  const IMMEDIATE = 200;
  const DELAYED = 20;
  const DELAY_MS = 2000;
  const total = IMMEDIATE + DELAYED;

  // The destination: counts arrivals, remembers when each job (numbered in its body) arrived.
  const arrivals = new Map();
  let duplicates = 0;
  let badSignatures = 0;
  let tokenForCheck = null;
  let notifyArrival = () => {};
  const destination = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const at = performance.now();
      const body = Buffer.concat(chunks).toString("utf8");
      if (tokenForCheck && !verifySignature(body, req.headers["x-quirrel-signature"], tokenForCheck)) badSignatures++;
      let n = null;
      try {
        n = JSON.parse(body).n;
      } catch {
        // not one of ours
      }
      if (arrivals.has(n)) duplicates++;
      else arrivals.set(n, { at, meta: req.headers["x-quirrel-meta"] });
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      notifyArrival();
    });
  });
  await new Promise((resolve) => destination.listen(0, HOST, resolve));
  const destUrl = `http://${HOST}:${destination.address().port}/hook`;

  let q = null;
  let failure = null;
  try {
    q = await startQuirrel({ dir, workDir, log: defaultLog });
    tokenForCheck = q.token;
    console.log(`quirrel at ${q.base}, pids ${q.pids.join(", ")}, destination ${destUrl}`);

    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const publishedAt = new Map();
    const delayOf = new Map();
    const errors = [];
    const jobs = [
      ...Array.from({ length: IMMEDIATE }, (_, i) => ({ n: i, delayMs: 0 })),
      ...Array.from({ length: DELAYED }, (_, i) => ({ n: IMMEDIATE + i, delayMs: DELAY_MS })),
    ];
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        publishedAt.set(job.n, performance.now());
        delayOf.set(job.n, job.delayMs);
        const result = await q.publish({ url: destUrl, body: JSON.stringify({ n: job.n }), delayMs: job.delayMs, agent });
        if (result.status !== 201 || !result.id) errors.push(`job ${job.n}: ${result.status} ${result.error ?? ""}`);
      }
    };
    const publishStart = performance.now();
    await Promise.all(Array.from({ length: 8 }, worker));
    const publishMs = performance.now() - publishStart;
    console.log(`published ${jobs.length - errors.length}/${jobs.length} jobs in ${publishMs.toFixed(0)} ms`);
    if (errors.length) throw new Error(`publishing failed:\n${errors.slice(0, 5).join("\n")}`);

    // Wait for every job to arrive (delayed ones after ~2 s), giving up 20 s after the last publish.
    const deadline = Date.now() + DELAY_MS + 20_000;
    while (arrivals.size < total && Date.now() < deadline) {
      await new Promise((resolve) => {
        notifyArrival = resolve;
        setTimeout(resolve, 500);
      });
    }
    agent.destroy();

    const immediateLat = [];
    const delayedLat = [];
    let early = 0;
    for (const [n, { at }] of arrivals) {
      if (!publishedAt.has(n)) continue;
      const ms = at - publishedAt.get(n);
      if (delayOf.get(n) > 0) {
        delayedLat.push(ms);
        if (ms < DELAY_MS) early++;
      } else immediateLat.push(ms);
    }
    immediateLat.sort((a, b) => a - b);
    delayedLat.sort((a, b) => a - b);
    const fmt = (v) => (v === null ? "-" : `${v.toFixed(1)} ms`);
    console.log(`arrived: ${immediateLat.length}/${IMMEDIATE} immediate, ${delayedLat.length}/${DELAYED} delayed (${DELAY_MS} ms); duplicates ${duplicates}; bad signatures ${badSignatures}`);
    console.log(`immediate publish->delivery: p50 ${fmt(nearestRank(immediateLat, 0.5))}, p99 ${fmt(nearestRank(immediateLat, 0.99))}, max ${fmt(immediateLat.at(-1) ?? null)}`);
    console.log(`delayed publish->delivery:   p50 ${fmt(nearestRank(delayedLat, 0.5))}, p99 ${fmt(nearestRank(delayedLat, 0.99))} (minus the ${DELAY_MS} ms delay: p50 ${fmt(nearestRank(delayedLat, 0.5) - DELAY_MS)}, p99 ${fmt(nearestRank(delayedLat, 0.99) - DELAY_MS)})`);
    const sample = arrivals.values().next().value;
    if (sample) console.log(`sample x-quirrel-meta: ${sample.meta}`);

    if (arrivals.size < total) throw new Error(`only ${arrivals.size} of ${total} jobs arrived at the destination`);
    if (early) throw new Error(`${early} delayed jobs arrived before their ${DELAY_MS} ms delay`);
    if (badSignatures) throw new Error(`${badSignatures} deliveries had a missing or wrong x-quirrel-signature`);
  } catch (err) {
    failure = err;
    if (q) console.error(q.logs());
  } finally {
    if (q) await q.stop();
    await new Promise((resolve) => destination.close(resolve));
    if (!keep) rmSync(workDir, { recursive: true, force: true });
    else console.log(`kept ${workDir}`);
  }
  if (failure) {
    console.error(`SELF-TEST FAILED: ${failure.message}`);
    return 1;
  }
  console.log("self-test passed");
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--self-test")) {
    selfTest(process.argv.slice(2)).then(
      (code) => process.exit(code),
      (err) => {
        console.error(`SELF-TEST FAILED: ${err.stack ?? err}`);
        process.exit(1);
      },
    );
  } else {
    console.log("usage: node bench/quirrel.mjs --self-test [--dir <where to install quirrel>] [--keep]");
    process.exit(2);
  }
}
