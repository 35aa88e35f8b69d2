// `npm run dev` under a process manager: SIGTERM (or SIGINT) to the launcher alone stops wrangler, esbuild and
// workerd too, and the launcher ends only once they are gone and the port is free.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { freePort } from "./server";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Every descendant of `pid` (from /proc: each process's parent). */
async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(Number(name), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Sends `signal` to the launcher once it is ready, or with `early`, while it applies the migrations. */
async function stopsEverything(signal: NodeJS.Signals, early = false) {
  const port = await freePort();
  await mkdir(path.join(root, ".wrangler"), { recursive: true });
  const state = await mkdtemp(path.join(root, ".wrangler", "e2e-sig-"));
  const launcher = spawn(process.execPath, [path.join(root, "scripts", "dev.mjs"), "--port", String(port), "--ip", "127.0.0.1", "--persist-to", state, "--quiet"], {
    cwd: root,
    // Its own group, like a service: the signal below goes to the launcher's pid only, never to the group.
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  launcher.stdout!.on("data", (c: Buffer) => (output += c.toString()));
  launcher.stderr!.on("data", (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => launcher.once("exit", () => resolve()));
  let family: number[] = [];
  const startedLater: number[] = [];
  try {
    const deadline = Date.now() + 90_000;
    // Ready means the banner and the port: a port that was free a moment ago may be taken by another process first
    // (servers of other tests bind free ports too), and a connection to it alone proves nothing.
    const ready = async () => output.includes("ready in") && (await listening(port));
    // Early: the migrations have a process of their own (wrangler d1 migrations apply) and wrangler dev has not started.
    const migrating = async () => output.includes("applying D1 migrations") && (await descendants(launcher.pid!)).length > 0;
    while (!(await (early ? migrating() : ready()))) {
      if (Date.now() > deadline) throw new Error(`not ${early ? "migrating" : "ready"} on ${port}:\n${output}`);
      await new Promise((r) => setTimeout(r, early ? 20 : 250));
    }
    family = await descendants(launcher.pid!);
    if (early) expect(output).not.toContain("starting wrangler dev");
    else expect(family.length).toBeGreaterThanOrEqual(2); // wrangler and workerd at least
    process.kill(launcher.pid!, signal);
    // Early, whatever the launcher starts until it handles the signal.
    let watching = early;
    const watch = (async () => {
      while (watching) {
        for (const pid of await descendants(launcher.pid!)) if (!startedLater.includes(pid)) startedLater.push(pid);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await exited;
    watching = false;
    await watch;
    // The moment the launcher has ended, nothing it started is left, and the port is free.
    // (Early, wrangler dev may have been started meanwhile: it must be gone too.)
    const left = [...family, ...startedLater].filter(alive);
    expect(left, `still running after the launcher ended:\n${output}`).toEqual([]);
    expect(await listening(port)).toBe(false);
  } finally {
    for (const pid of [launcher.pid!, ...family, ...startedLater]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await rm(state, { recursive: true, force: true });
  }
}

describe("npm run dev stops its whole process tree", () => {
  it("on SIGTERM", () => stopsEverything("SIGTERM"), 120_000);
  it("on SIGINT", () => stopsEverything("SIGINT"), 120_000);
  it("on SIGTERM while it applies the migrations", () => stopsEverything("SIGTERM", true), 120_000);
});
