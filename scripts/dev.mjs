#!/usr/bin/env node
// `npm run dev`: Boomerang on 127.0.0.1:8080 with embedded D1, Queues and Durable Objects.
// Applies local D1 migrations, starts `wrangler dev` in dev mode, prints the QStash env lines, and runs
// the sweeper every 30 s (local wrangler does not fire cron triggers by itself).
//
// Options (flags or environment; --help lists them):
//   --port N        / BOOMERANG_PORT     (default 8080, the official QStash dev server's port)
//   --ip ADDR       / BOOMERANG_IP       (default 127.0.0.1)
//   --persist-to D  / BOOMERANG_STATE    (default .wrangler/state; delete it or run `npm run reset` to start over)
//   --var KEY:VALUE                      any setting from wrangler.toml [vars], e.g. --var MAX_RETRIES:5
//   --quiet                              less wrangler output
//   --debug         / BOOMERANG_DEBUG=1  wrangler's debug log on the console too (its log file is kept bounded either way)
//   --sweep-every S / BOOMERANG_SWEEP_EVERY  seconds between sweeps (default 30; 0 runs none, not even at start:
//                                        for benchmarks that drive POST /admin/sweep themselves)
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DEV_TOKEN, OFFLINE_ENV, checkArgs, debugWanted, optionReader, readyBanner, usageOf } from "./launcher.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
checkArgs(args, {
  values: ["port", "ip", "persist-to", "var", "sweep-every"],
  flags: ["quiet", "debug"],
  usage: usageOf(fileURLToPath(import.meta.url), "npm run dev --"),
});
const opt = optionReader(args);
const port = Number(opt("port", "BOOMERANG_PORT", "8080"));
const ip = opt("ip", "BOOMERANG_IP", "127.0.0.1");
const persist = path.resolve(root, opt("persist-to", "BOOMERANG_STATE", ".wrangler/state"));
const quiet = args.includes("--quiet");
const sweepEvery = Number(opt("sweep-every", "BOOMERANG_SWEEP_EVERY", "30"));
if (!Number.isFinite(sweepEvery) || sweepEvery < 0) {
  console.error(`[boomerang] --sweep-every must be a number of seconds (0 for none), got "${opt("sweep-every", "BOOMERANG_SWEEP_EVERY", "30")}"`);
  process.exit(1);
}
const extraVars = [];
args.forEach((a, i) => {
  if (a === "--var" && args[i + 1]) extraVars.push("--var", args[i + 1]);
});

// Wrangler appends every message it logs, debug ones included (a DevTools network event for every outgoing
// delivery), to a file of its own, whatever the console's log level: hundreds of MB an hour under load. Here that
// file is .wrangler/logs/wrangler-dev.log, rotated at LOG_MAX bytes (one older file is kept), so it stays bounded.
// A WRANGLER_LOG_PATH of your own is left alone. --debug / BOOMERANG_DEBUG=1 also prints wrangler's debug log on
// the console.
const debug = debugWanted(args);
const logFile = path.join(root, ".wrangler", "logs", "wrangler-dev.log");
const LOG_MAX = 20 << 20;
mkdirSync(path.dirname(logFile), { recursive: true });
function rotateLog() {
  if (process.env.WRANGLER_LOG_PATH) return;
  try {
    if (statSync(logFile).size > LOG_MAX) renameSync(logFile, `${logFile}.1`);
  } catch {
    // not written yet
  }
}
rotateLog();

const env = {
  ...process.env,
  WRANGLER_LOG_PATH: process.env.WRANGLER_LOG_PATH || logFile,
  ...(debug ? { WRANGLER_LOG: "debug" } : {}),
  ...OFFLINE_ENV,
};

const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
if (!existsSync(wrangler)) {
  console.error("wrangler is not installed: run `npm install` first.");
  process.exit(1);
}

const log = (msg) => console.log(`[boomerang] ${msg}`);

// Handled from the start: a signal that comes while the migrations run (this process waits for them) is handled once
// they have ended and wrangler dev has been started, and stop() then ends that too. Without a handler, the launcher
// would end at once and leave the migrations' processes running.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => void stop(0, `got ${signal}`));

log(`applying D1 migrations to ${path.relative(root, persist) || "."} …`);
const migrate = spawnSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], {
  cwd: root,
  env,
  encoding: "utf8",
});
if (migrate.status !== 0) {
  console.error(migrate.stdout, migrate.stderr);
  console.error("[boomerang] migrations failed; if the local state is damaged, run `npm run reset` and try again.");
  process.exit(1);
}

log(`starting wrangler dev on http://${ip}:${port} …`);
const child = spawn(
  wrangler,
  [
    "dev",
    "--ip", ip,
    "--port", String(port),
    "--persist-to", persist,
    "--var", "DEV_MODE:true",
    "--var", "ALLOW_PRIVATE_DESTINATIONS:true",
    // Quotas are off in dev mode unless given with --var (which comes after, and wins).
    "--var", "DAILY_MESSAGE_QUOTA:off",
    "--var", "BURST_RPS:off",
    ...extraVars,
    "--test-scheduled",
    "--show-interactive-dev-session=false",
    "--inspector-port", "0",
    ...(quiet ? ["--log-level", "warn"] : []),
  ],
  // Not detached: wrangler, esbuild and workerd stay in this process group, so a signal to the group (a terminal's
  // Ctrl-C, a test harness's SIGKILL) reaches them all. A signal to this process alone is handled by stop().
  { cwd: root, env, stdio: ["ignore", "inherit", "inherit"] },
);

const base = `http://${ip}:${port}`;
let stopping = false;
let sweeper;
const logRotation = setInterval(rotateLog, 10_000);
logRotation.unref();
let childExited = false;

/** Every process this launcher started, directly or not (wrangler, esbuild, workerd), from `ps`. */
function descendants() {
  const r = spawnSync("ps", ["-A", "-o", "pid=,ppid="], { encoding: "utf8" });
  const children = new Map();
  for (const line of (r.stdout ?? "").split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (pid && ppid) (children.get(ppid) ?? children.set(ppid, []).get(ppid)).push(pid);
  }
  const out = [];
  const walk = (p) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(process.pid);
  if (child.pid && !out.includes(child.pid)) out.push(child.pid);
  return out.filter((pid) => pid !== r.pid);
}

function signalAll(pids, signal) {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function anyAlive(pids) {
  return pids.some((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Stops wrangler and everything it started (esbuild, workerd): SIGTERM to each of them (taken from the process tree
 * before anything exits, since workerd outlives wrangler for a moment), SIGKILL to whatever is left after 5 s, and
 * exits only once they are gone, so that the port is free when this process has ended (process managers, Docker
 * and CI wait for exactly that).
 */
async function stop(code, why) {
  if (stopping) return;
  stopping = true;
  clearInterval(sweeper);
  if (why) log(`${why}; stopping wrangler and workerd …`);
  const tree = descendants();
  signalAll(tree, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (anyAlive(tree) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (anyAlive(tree)) {
    log("still running after 5 s; killing them");
    signalAll(tree, "SIGKILL");
    const hard = Date.now() + 3000;
    while (anyAlive(tree) && Date.now() < hard) await new Promise((r) => setTimeout(r, 50));
  }
  process.exit(code);
}
child.on("exit", (code) => {
  childExited = true;
  if (!stopping) {
    console.error(`[boomerang] wrangler dev exited (${code}). Is port ${port} free? Try --port 8081.`);
    void stop(code ?? 1);
  }
});
// Last resort (an uncaught error in this launcher): never leave wrangler running.
process.on("exit", () => {
  if (!childExited) signalAll(descendants(), "SIGKILL");
});

async function sweep() {
  try {
    await fetch(`${base}/__scheduled?cron=*+*+*+*+*`);
  } catch {
    // the server is restarting or gone; the next tick tries again
  }
}

const started = Date.now();
for (;;) {
  if (stopping) break;
  try {
    const res = await fetch(`${base}/`);
    if (res.ok) break;
  } catch {
    // not up yet
  }
  if (Date.now() - started > 60_000) {
    console.error("[boomerang] the server did not answer within 60 s; see the wrangler output above.");
    stop(1);
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}
if (!stopping) {
  // Provision the dev tenants and re-drive anything a previous run left unfinished.
  await fetch(`${base}/v2/keys`, {
    headers: { authorization: `Bearer ${DEV_TOKEN}` },
  }).catch(() => {});
  if (sweepEvery > 0) {
    await sweep();
    sweeper = setInterval(sweep, sweepEvery * 1000);
  }
  console.log(readyBanner({ base: `http://${ip === "0.0.0.0" ? "127.0.0.1" : ip}:${port}`, startedAt: started }));
}
