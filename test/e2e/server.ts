/**
 * Starts Boomerang the way a user does (`node scripts/dev.mjs`), on a free port with its own fresh state
 * directory, and stops it again without leaving `wrangler` or `workerd` processes behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { beforeEach } from "vitest";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The user-1 dev token, used to check that the dev tenants answer. */
const DEV_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=";

export interface DevServer {
  /** Base URL of the server, e.g. http://127.0.0.1:43123 (no trailing slash). */
  url: string;
  /** Everything the server printed so far (stdout and stderr interleaved). */
  output(): string;
  /**
   * Worker sources changed since the server started. `wrangler dev` reloads the worker when they change, which
   * can drop work that was in flight; a test failing at the same time may be caused by that, not by a bug.
   */
  changedSources(): Promise<string[]>;
  /** Stops the whole process group and removes the state directory. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILLs the whole process group at once (a crash), keeping the state directory for a restart. */
  kill(): Promise<void>;
  /** The port and the state directory, to start the server again on them. */
  port: number;
  stateDir: string;
  /** The launcher's process id (node scripts/start.mjs or scripts/dev.mjs), which leads the process group. */
  pid: number | undefined;
}

export interface StartOptions {
  /** Extra settings passed as `--var KEY:VALUE`; MAX_TIMEOUT defaults to 10s. */
  vars?: Record<string, string>;
  /** How long to wait for the server to become ready. */
  readyTimeoutMs?: number;
  /** Start on this port and state directory (a restart after kill()); the new server owns the directory. */
  port?: number;
  stateDir?: string;
  /** Serve with `npm start` (scripts/start.mjs: lean, no reload) instead of `npm run dev`. */
  lean?: boolean;
  /** More command-line flags for the launcher (e.g. `--d1-host`). */
  args?: string[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A TCP port that was free a moment ago (bound to port 0, then released). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!port) throw new Error("could not find a free port");
  return port;
}

/** True while any process of the group led by `pgid` still exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM would mean "exists but not ours"; it cannot be ours to wait for, so treat it as gone.
    return (err as NodeJS.ErrnoException).code !== "ESRCH" && (err as NodeJS.ErrnoException).code !== "EPERM";
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is already gone
  }
}

async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!groupAlive(pgid)) return true;
    await sleep(100);
  }
  return !groupAlive(pgid);
}

/** SIGTERM to the group (dev.mjs forwards it to wrangler), then SIGKILL if anything is still there. */
async function killGroup(child: ChildProcess): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) return;
  signalGroup(pgid, "SIGTERM");
  if (await waitGroupGone(pgid, 6_000)) return;
  signalGroup(pgid, "SIGKILL");
  if (!(await waitGroupGone(pgid, 5_000))) {
    console.warn(`[e2e] process group ${pgid} still exists after SIGKILL`);
  }
}

/** Files under src/ and migrations/, and wrangler.toml, modified after `since` (Unix ms). */
async function sourcesChangedSince(since: number): Promise<string[]> {
  const candidates = ["wrangler.toml"];
  for (const dir of ["src", "migrations"]) {
    try {
      const entries = await readdir(path.join(root, dir), { recursive: true, withFileTypes: true });
      for (const e of entries) {
        if (e.isFile()) candidates.push(path.relative(root, path.join(e.parentPath, e.name)));
      }
    } catch {
      // the directory does not exist
    }
  }
  const changed: string[] = [];
  for (const file of candidates) {
    try {
      if ((await stat(path.join(root, file))).mtimeMs > since) changed.push(file);
    } catch {
      // removed meanwhile
    }
  }
  return changed;
}

async function answers(url: string, token?: string): Promise<boolean> {
  try {
    const res = await fetch(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(2_000),
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export async function startServer(options: StartOptions = {}): Promise<DevServer> {
  const port = options.port ?? (await freePort());
  const startedAt = Date.now();
  await mkdir(path.join(root, ".wrangler"), { recursive: true });
  const stateDir = options.stateDir ?? (await mkdtemp(path.join(root, ".wrangler", "e2e-")));
  const vars = { MAX_TIMEOUT: "10s", ...options.vars };
  const args = [
    path.join(root, "scripts", options.lean ? "start.mjs" : "dev.mjs"),
    "--port", String(port),
    "--ip", "127.0.0.1",
    "--persist-to", stateDir,
    ...(options.lean ? [] : ["--quiet"]),
    ...(options.args ?? []),
    ...Object.entries(vars).flatMap(([key, value]) => ["--var", `${key}:${value}`]),
  ];
  // detached: the child leads its own process group, so one signal reaches node, wrangler and workerd.
  const child = spawn(process.execPath, args, { cwd: root, detached: true, stdio: ["ignore", "pipe", "pipe"] });

  let output = "";
  const capture = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    // Keep the tail only: a long run must not grow this without bound.
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on("data", capture);
  child.stderr?.on("data", capture);

  let exitCode: number | null | undefined;
  child.on("exit", (code, signal) => {
    exitCode = code ?? (signal ? -1 : null);
  });

  let stopped = false;
  // Last resort if the test process ends without calling stop(): do not leave workerd running.
  const onExit = () => {
    if (!stopped && child.pid !== undefined) signalGroup(child.pid, "SIGKILL");
  };
  process.once("exit", onExit);

  const url = `http://127.0.0.1:${port}`;
  const server: DevServer = {
    url,
    port,
    stateDir,
    pid: child.pid,
    async kill() {
      if (stopped) return;
      stopped = true;
      process.removeListener("exit", onExit);
      if (child.pid === undefined) return;
      signalGroup(child.pid, "SIGKILL");
      await waitGroupGone(child.pid, 5_000);
    },
    output: () => output,
    changedSources: () => sourcesChangedSince(startedAt),
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener("exit", onExit);
      await killGroup(child);
      await rm(stateDir, { recursive: true, force: true });
    },
  };

  const timeoutMs = options.readyTimeoutMs ?? 90_000;
  const started = Date.now();
  let lastProgress = started;
  for (;;) {
    if (output.includes("ready in")) break;
    if (exitCode !== undefined) {
      await server.stop();
      throw new Error(`dev server exited (code ${exitCode}) before it was ready. Output:\n${output}`);
    }
    // Fallback in case the ready line is missed: the server answers and the dev tenant exists.
    if ((await answers(`${url}/`)) && (await answers(`${url}/v2/keys`, DEV_TOKEN))) break;
    const now = Date.now();
    if (now - started > timeoutMs) {
      await server.stop();
      throw new Error(`dev server on port ${port} not ready after ${timeoutMs / 1000} s. Output:\n${output}`);
    }
    if (now - lastProgress >= 10_000) {
      lastProgress = now;
      console.log(`[e2e] still waiting for the dev server on port ${port} (${Math.round((now - started) / 1000)} s)`);
    }
    await sleep(250);
  }
  return server;
}

/** On a failed test, prints the tail of the server's output and any worker sources changed while it ran. */
export function showServerOnFailure(get: () => DevServer | undefined): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(async () => {
      const server = get();
      if (!server) return;
      console.log(`[e2e] dev server output (tail):\n${server.output().slice(-4_000)}`);
      const changed = await server.changedSources();
      if (changed.length) {
        console.log(
          `[e2e] worker sources changed while the server ran (wrangler dev reloaded it; in-flight work may be lost): ${changed.join(", ")}`,
        );
      }
    });
  });
}
