// The Miniflare options of lean serving (`npm start`, and the benchmarks that serve Boomerang the same way): the
// worker bundled as `wrangler deploy` would upload it, with every binding of wrangler.toml as wrangler itself maps
// it for Miniflare, and the persisted state layout of `wrangler dev --persist-to`.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/** Runs a command to its end in `root`; on failure prints its output and calls `fail` with a hint. */
export function runOrFail({ root, env, fail }, label, cmd, args, hint) {
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    console.error(r.stdout, r.stderr);
    fail(`${label} failed${hint ? `; ${hint}` : ""}`);
  }
  return r.stdout;
}

/**
 * Bundles the worker of `root` into `persist/start-bundle` and returns Miniflare options that serve it on
 * `ip`:`port` with `vars` over wrangler.toml's [vars], its state under `persist` (shared with `npm run dev`).
 */
export function leanOptions({ root, env, persist, vars = {}, ip, port, fail }) {
  const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
  // Next to the state it serves: two servers with different state never share a bundle being rewritten.
  const bundleDir = path.join(persist, "start-bundle");
  rmSync(bundleDir, { recursive: true, force: true });
  mkdirSync(bundleDir, { recursive: true });
  runOrFail({ root, env, fail }, "bundling", wrangler, ["deploy", "--dry-run", "--outdir", bundleDir], "run `npm run typecheck` to see what does not build");
  // Read in a child process: wrangler's modules need not stay in the server's memory.
  const reader = `import { unstable_getMiniflareWorkerOptions as o } from "wrangler"; process.stdout.write(JSON.stringify(o("wrangler.toml", undefined, {}).workerOptions));`;
  const workerOptions = JSON.parse(runOrFail({ root, env, fail }, "reading wrangler.toml", process.execPath, ["--input-type=module", "-e", reader]));
  return {
    ...workerOptions,
    name: "boomerang",
    modules: true,
    modulesRules: undefined,
    scriptPath: path.join(bundleDir, "index.js"),
    // Module names relative to the bundle, wherever the state (and so the bundle) lives.
    modulesRoot: bundleDir,
    // On a loopback address every caller is this machine: the caller IP a delivery reports (Upstash-Caller-Ip) is
    // that address, which Miniflare's entry worker would otherwise have added as CF-Connecting-IP.
    bindings: { ...workerOptions.bindings, ...(isLoopback(ip) ? { LOCAL_CALLER_IP: ip === "localhost" ? "127.0.0.1" : ip } : {}), ...vars },
    // The local queue broker hands the consumer one batch at a time (a deployment runs up to max_concurrency
    // batches at once): the largest batch Queues allows keeps deliveries up with publishes.
    queueConsumers: Object.fromEntries(Object.entries(workerOptions.queueConsumers ?? {}).map(([q, c]) => [q, { ...c, maxBatchSize: 100 }])),
    ...servedOn(ip, port),
    // The layout `wrangler dev --persist-to` uses: `npm start` and `npm run dev` share their state.
    defaultPersistRoot: path.join(persist, "v3"),
    // The placeholder Request.cf object, without trying to download the real one.
    cf: false,
  };
}

/** Whether `ip` only accepts connections from this machine. */
export function isLoopback(ip) {
  return ip === "localhost" || ip === "::1" || /^127\./.test(ip);
}

/**
 * Where a worker served by Miniflare listens. On a loopback address, requests go straight to the worker on a direct
 * socket; Miniflare's entry worker, another isolate each request would pass through first (half the throughput of a
 * bare worker), only gets an internal socket on a free port (used by Miniflare's own calls). On any other address
 * the entry worker stays in front, for the CF-Connecting-IP header it adds with each caller's address.
 * The public address is `publicPort(options)`.
 */
export function servedOn(ip, port) {
  if (!isLoopback(ip)) return { host: ip, port };
  return { host: "127.0.0.1", port: 0, unsafeDirectSockets: [{ host: ip, port }] };
}

/** The port the options of `servedOn` serve the public on. */
export function publicPort(options) {
  return options.unsafeDirectSockets?.[0]?.port ?? options.port;
}

/** `options` with the RELAY binding to the relay listening on `address` (host:port), and its secret. */
export function withRelay(options, address, secret) {
  return {
    ...options,
    serviceBindings: { ...options.serviceBindings, RELAY: { external: { address, http: {} } } },
    bindings: { ...options.bindings, RELAY_SECRET: secret },
  };
}

/**
 * Options for the D1 host (src/db/remote.ts): a workerd process running the same bundle as `options` with its D1
 * databases (the same files, under the same persist root) and a secret, serving only the D1Host entry point on a free
 * loopback port. D1's SQLite then runs on that process's thread, not on the one of the worker.
 */
export function d1HostOptions(options, secret) {
  return {
    name: "d1-host",
    modules: true,
    scriptPath: options.scriptPath,
    modulesRoot: options.modulesRoot,
    compatibilityDate: options.compatibilityDate,
    compatibilityFlags: options.compatibilityFlags,
    bindings: { D1_HOST_SECRET: secret },
    d1Databases: options.d1Databases,
    defaultPersistRoot: options.defaultPersistRoot,
    // Only the D1Host entry point, on a free loopback port (read it with unsafeGetDirectURL("d1-host", "D1Host")).
    host: "127.0.0.1",
    port: 0,
    unsafeDirectSockets: [{ host: "127.0.0.1", port: 0, entrypoint: "D1Host" }],
    cf: false,
  };
}

/** `options` without D1 bindings of its own, and with the D1_HOST binding to the host listening on `address`. */
export function withD1Host(options, address, secret) {
  const names = Object.keys(options.d1Databases ?? {});
  return {
    ...options,
    d1Databases: undefined,
    serviceBindings: { ...options.serviceBindings, D1_HOST: { external: { address, http: {} } } },
    bindings: { ...options.bindings, D1_HOST_SECRET: secret, D1_HOST_NAMES: names.join(",") },
  };
}

/**
 * Ties the workerd processes Miniflare starts from this process to it: on Linux, each is started through
 * `setpriv --pdeathsig TERM` (scripts/workerd-tied.sh), so the kernel stops it when this process ends, even by SIGKILL.
 * Without this, a SIGKILL to `npm start` alone leaves workerd serving, and holding the port. Nothing changes elsewhere,
 * without setpriv, or when MINIFLARE_WORKERD_PATH is set already. Returns whether workerd is now tied.
 */
export function tieWorkerd(root) {
  if (process.platform !== "linux" || process.env.MINIFLARE_WORKERD_PATH) return false;
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  const wrapper = path.join(root, "scripts", "workerd-tied.sh");
  if (!setpriv || !existsSync(wrapper)) return false;
  // The binary Miniflare would run: the `workerd` package as Miniflare itself resolves it.
  const fromRoot = createRequire(path.join(root, "package.json"));
  process.env.BOOMERANG_WORKERD = createRequire(fromRoot.resolve("miniflare"))("workerd").default;
  process.env.BOOMERANG_SETPRIV = setpriv;
  process.env.MINIFLARE_WORKERD_PATH = wrapper;
  return true;
}
