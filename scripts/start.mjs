#!/usr/bin/env node
// `npm start`: Boomerang served lean, for running it rather than editing it. The same worker, bindings and persisted
// state as `npm run dev`, run directly on workerd through Miniflare's API: no wrangler dev proxy in front of it, no
// inspector, no file watcher, and no debug log unless asked for. Local D1 migrations are applied first, and the
// sweeper runs every 30 s, as under `npm run dev`. See docs/architecture.md, "Serving modes".
//
// Options (flags, or the environment; --help lists them):
//   --port N        / BOOMERANG_PORT         (default 8080)
//   --ip A          / BOOMERANG_IP           (default 127.0.0.1)
//   --persist-to D  / BOOMERANG_STATE        (default .wrangler/state, shared with `npm run dev`)
//   --var KEY:VALUE                          any setting from wrangler.toml [vars], e.g. --var MAX_RETRIES:5
//   --sweep-every S / BOOMERANG_SWEEP_EVERY  seconds between sweeps (default 30; 0 runs none)
//   --debug         / BOOMERANG_DEBUG=1      the runtime's and Miniflare's debug logging (off by default)
//   --no-relay      / BOOMERANG_RELAY=0      make attempts from the worker's own process, without the relay (a Node
//                                            process, scripts/relay.mjs)
//   --d1-host       / BOOMERANG_D1_HOST=1    hold D1 in a workerd process of its own (off by default: on 2 cores it
//                                            costs more CPU than it frees; docs/architecture.md, "Serving modes")
//   --v8-flags L    / BOOMERANG_V8_FLAGS     V8 flags for workerd, space-separated, leading dashes optional; "none"
//                                            for none (default heap-growing-percent=20: fewer long pauses to free the
//                                            objects of a burst; docs/architecture.md, "Serving modes")
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { d1HostOptions, leanOptions, runOrFail, tieWorkerd, withD1Host, withRelay } from "./lean.mjs";
import { DEV_TOKEN, OFFLINE_ENV, checkArgs, debugWanted, optionReader, readyBanner, usageOf } from "./launcher.mjs";
import { forkRelay } from "./relay.mjs";
import { DEFAULT_V8_FLAGS, parseV8Flags, passV8Flags } from "./v8-flags.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
checkArgs(args, {
  values: ["port", "ip", "persist-to", "var", "sweep-every", "v8-flags"],
  flags: ["debug", "no-relay", "d1-host"],
  usage: usageOf(fileURLToPath(import.meta.url), "npm start --"),
});
const opt = optionReader(args);
const log = (msg) => console.log(`[boomerang] ${msg}`);
const fail = (msg) => {
  console.error(`[boomerang] ${msg}`);
  process.exit(1);
};

// What is running, for stop(). Signals are handled from the start: one that comes while the migrations or the bundling
// run (this process waits for them) is handled once they have ended, and stops whatever has been started by then.
let mf;
let relay;
let d1host;
let stopping = false;
let sweeper;
async function stop(code, why) {
  if (stopping) return;
  stopping = true;
  clearInterval(sweeper);
  if (why) log(`${why}; stopping …`);
  await mf?.dispose().catch(() => undefined);
  relay?.kill();
  await d1host?.dispose().catch(() => undefined);
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => void stop(0, `got ${signal}`));

const port = Number(opt("port", "BOOMERANG_PORT", "8080"));
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got "${opt("port", "BOOMERANG_PORT", "8080")}"`);
const ip = opt("ip", "BOOMERANG_IP", "127.0.0.1");
const persist = path.resolve(root, opt("persist-to", "BOOMERANG_STATE", ".wrangler/state"));
const sweepEvery = Number(opt("sweep-every", "BOOMERANG_SWEEP_EVERY", "30"));
if (!Number.isFinite(sweepEvery) || sweepEvery < 0) fail(`--sweep-every must be a number of seconds (0 for none)`);
const debug = debugWanted(args);
const relayWanted = !args.includes("--no-relay") && process.env.BOOMERANG_RELAY !== "0";
const d1HostWanted = args.includes("--d1-host") || process.env.BOOMERANG_D1_HOST === "1";
const v8Flags = parseV8Flags(opt("v8-flags", "BOOMERANG_V8_FLAGS", DEFAULT_V8_FLAGS));
// Dev mode and its quota defaults, as under `npm run dev`, and push-back once deliveries lag 1 s behind
// (MAX_QUEUE_LAG, docs/configuration.md); --var comes after, and wins.
const vars = { DEV_MODE: "true", ALLOW_PRIVATE_DESTINATIONS: "true", DAILY_MESSAGE_QUOTA: "off", BURST_RPS: "off", MAX_QUEUE_LAG: "1s" };
args.forEach((a, i) => {
  if (a !== "--var") return;
  const m = /^([A-Z0-9_]+):(.*)$/.exec(args[i + 1] ?? "");
  if (!m) fail(`--var takes KEY:VALUE (e.g. --var MAX_RETRIES:5), got "${args[i + 1] ?? ""}"`);
  vars[m[1]] = m[2];
});

const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
if (!existsSync(wrangler)) fail("wrangler is not installed: run `npm install` first.");
const env = { ...process.env, ...OFFLINE_ENV, ...(debug ? {} : { WRANGLER_LOG: "warn" }) };

const started = Date.now();
log(`applying D1 migrations to ${path.relative(root, persist) || "."} …`);
runOrFail({ root, env, fail }, "the migrations", wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], "if the local state is damaged, run `npm run reset` and try again");

const { Miniflare, Log, LogLevel } = await import("miniflare");
log("bundling the worker …");
let options = leanOptions({ root, env, persist, vars, ip, port, fail });
// The workerd processes started below stop when this process does, however it ends (scripts/workerd-tied.sh).
tieWorkerd(root);
// And they get the V8 flags (scripts/v8-flags.mjs).
passV8Flags(v8Flags);
const logOptions = {
  // Miniflare's own info log has a line for every batch the queue hands the consumer: tens a second under load, a
  // log that grows without bound. Warnings and errors only, unless --debug.
  log: new Log(debug ? LogLevel.DEBUG : LogLevel.WARN),
  // One line per request only with --debug: under load, the log would cost more than the requests.
  logRequests: debug,
};
// The attempt relay first: the worker's RELAY binding needs its address (src/delivery/relay.ts).
if (relayWanted) {
  try {
    const secret = randomBytes(24).toString("hex");
    const r = await forkRelay(secret);
    relay = r.child;
    options = withRelay(options, r.address, secret);
    log(`attempts are made by the relay, a Node process on ${r.address} (--no-relay to make them in the worker's own)`);
  } catch (err) {
    fail(`the attempt relay did not start (${err.message}); try again, or run with --no-relay`);
  }
}
// The D1 host, when asked for: the databases in a workerd process of their own (src/db/remote.ts).
if (d1HostWanted) {
  const secret = randomBytes(24).toString("hex");
  d1host = new Miniflare({ ...d1HostOptions(options, secret), ...logOptions });
  let address;
  try {
    await d1host.ready;
    address = (await d1host.unsafeGetDirectURL("d1-host", "D1Host")).host;
  } catch (err) {
    console.error(err);
    await d1host.dispose().catch(() => undefined);
    fail("the D1 host did not start; try again, or run without --d1-host");
  }
  options = withD1Host(options, address, secret);
  log(`D1 is held by the D1 host, a workerd process on ${address}`);
}
mf = new Miniflare({ ...options, ...logOptions });


let url;
try {
  url = await mf.ready;
  // On a loopback address the public socket is the worker's direct one (scripts/lean.mjs, servedOn).
  if (options.unsafeDirectSockets) url = await mf.unsafeGetDirectURL("boomerang");
} catch (err) {
  console.error(err);
  await stop(1, `the server did not start. Is port ${port} free? Try --port 8081`);
}
const base = `http://${ip === "0.0.0.0" ? "127.0.0.1" : ip}:${url.port}`;
const worker = await mf.getWorker();
async function sweep() {
  try {
    await worker.scheduled({ cron: "* * * * *" });
  } catch (err) {
    console.error("[boomerang] a sweep failed; the next one tries again", err);
  }
}
// Provision the dev tenants and re-drive anything a previous run left unfinished.
await fetch(`${base}/v2/keys`, { headers: { authorization: `Bearer ${DEV_TOKEN}` } }).catch(() => undefined);
if (sweepEvery > 0) {
  await sweep();
  sweeper = setInterval(sweep, sweepEvery * 1000);
}
console.log(readyBanner({ base, startedAt: started, mode: "lean mode: workerd through Miniflare, no reload" }));
