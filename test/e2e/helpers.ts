/** Small shared pieces for the end-to-end tests: dev credentials, polling, and reading recorded hits. */
import { randomBytes } from "node:crypto";
import { readFile, readdir, readlink } from "node:fs/promises";
import type { Destination, Hit } from "../support/destination";

/** Public dev credentials (contract §1.2.1). */
export const USER1 = {
  token: "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=",
  currentSigningKey: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
  nextSigningKey: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
};
export const USER2 = {
  token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjEiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
  currentSigningKey: "sig_7GVPjvuwsfqF65iC8fSrs1dfYruM",
  nextSigningKey: "sig_5NoELc3EFnZn4DVS5bDs2Nk4b7Ua",
};

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A destination key no other test uses, so hits of different tests never mix. */
export function uniqueKey(label: string): string {
  return `${label}-${randomBytes(4).toString("hex")}`;
}

/**
 * Polls `probe` until it returns something other than undefined, and returns that. A probe that throws is
 * treated as "not yet"; on timeout the last error (if any) is part of the message.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Every request the destination received for `key`, oldest first. */
export function hitsFor(dest: Destination, key: string): Hit[] {
  return dest.hits.filter((h) => h.key === key).sort((a, b) => a.time - b.time);
}

/** Waits until the destination has received at least `count` requests for `key`. */
export function waitForHits(dest: Destination, key: string, count: number, timeoutMs = 15_000): Promise<Hit[]> {
  return waitFor(
    `${count} request(s) to /${key}/… (got ${hitsFor(dest, key).length})`,
    () => {
      const hits = hitsFor(dest, key);
      return hits.length >= count ? hits : undefined;
    },
    timeoutMs,
  );
}

/** The request body of a hit as UTF-8 text. */
export function bodyText(hit: Hit): string {
  return Buffer.from(hit.body, "base64").toString("utf8");
}

/** Standard base64 of a UTF-8 string. */
export function base64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/** Decodes standard base64 to UTF-8 text. */
export function fromBase64(value: string): string {
  return Buffer.from(value, "base64").toString("utf8");
}

/** The two JSON segments of a compact JWT, without checking anything. */
export function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header = "", payload = ""] = token.split(".");
  const part = (s: string) => JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as Record<string, unknown>;
  return { header: part(header), payload: part(payload) };
}

/**
 * The pid of the process that holds a TCP socket on this machine whose local port is `port` and whose peer's port is
 * `peer` (0: a listening socket), from Linux's /proc; undefined if none is found. The peer matters: other processes
 * on the machine may hold connections from the same local port number to other places.
 */
export async function socketOwner(port: number, peer: number): Promise<number | undefined> {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && parseInt(f[1].split(":").at(-1)!, 16) === port && parseInt(f[2].split(":").at(-1)!, 16) === peer) inodes.add(f[9]);
    }
  }
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(m[1])) return Number(pid);
    }
  }
  return undefined;
}

/** The pids of the processes that hold a file under `dir` open, from Linux's /proc. */
export async function fileHolders(dir: string): Promise<Set<number>> {
  const holders = new Set<number>();
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      if (link.startsWith(prefix)) {
        holders.add(Number(pid));
        break;
      }
    }
  }
  return holders;
}
