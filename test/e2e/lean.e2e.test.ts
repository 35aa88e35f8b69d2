/**
 * End-to-end: `npm start` (scripts/start.mjs), the lean serving mode. The same worker, bindings and state as `npm
 * run dev`, on workerd through Miniflare's API: the SDK publishes with a callback and a delay, every delivery is
 * signed, a schedule is stored in a Durable Object, the state carries over to `npm run dev` and back, and nothing
 * is logged per request.
 */
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Client, Receiver } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, startDestination } from "../support/destination";
import { USER1, fileHolders, hitsFor, socketOwner, uniqueKey, waitForHits } from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";

let dest: Destination;
let server: DevServer | undefined;
const receiver = new Receiver({ currentSigningKey: USER1.currentSigningKey, nextSigningKey: USER1.nextSigningKey });

beforeAll(async () => {
  dest = await startDestination();
  server = await startServer({ lean: true });
}, 180_000);
afterAll(async () => {
  await server?.stop();
  await dest?.close();
});
showServerOnFailure(() => server);

describe("npm start (lean serving)", () => {
  it("delivers, signs, calls back and delays like npm run dev, and logs no line per request", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER1.token });
    const key = uniqueKey("lean");
    const url = `${dest.base}/${key}/ok`;
    const { messageId } = (await client.publish({ url, body: "lean body", callback: `${dest.base}/${key}-cb/ok` })) as { messageId: string };
    const [hit] = await waitForHits(dest, key, 1, 15_000);
    expect(hit.headers["upstash-message-id"]).toBe(messageId);
    // Served on a loopback address straight to the worker (no entry worker to add CF-Connecting-IP): the caller is
    // still reported, as this machine.
    expect(hit.headers["upstash-caller-ip"]).toBe("127.0.0.1");
    expect(await receiver.verify({ signature: hit.headers["upstash-signature"], body: "lean body", url })).toBe(true);
    // Who made the call, by the owner of its connection's socket (still open: kept alive). A lone attempt is made by
    // the process that serves the API; a batch of RELAY_MIN_BATCH attempts or more by the attempt relay, a Node
    // process of its own (scripts/relay.mjs).
    const relayPort = Number(/attempts are made by the relay, a Node process on 127\.0\.0\.1:(\d+)/.exec(server!.output())?.[1]);
    const relayPid = await socketOwner(relayPort, 0);
    const apiPid = await socketOwner(Number(new URL(server!.url).port), 0);
    const destPort = Number(new URL(dest.base).port);
    expect(relayPid).toBeGreaterThan(0);
    expect(apiPid).toBeGreaterThan(0);
    expect(relayPid).not.toBe(apiPid);
    expect(await socketOwner(hit.remotePort!, destPort)).toBe(apiPid);
    // One batch publish: one commit, one queue pack, one consumer batch of 8.
    await client.batch(Array.from({ length: 8 }, (_, i) => ({ url: `${dest.base}/${key}-many/ok`, body: `many ${i}` })));
    const many = await waitForHits(dest, `${key}-many`, 8, 15_000);
    const owners = await Promise.all(many.map((h) => socketOwner(h.remotePort!, destPort)));
    expect(owners).toContain(relayPid);
    const [cb] = await waitForHits(dest, `${key}-cb`, 1, 15_000);
    expect(JSON.parse(Buffer.from(cb.body, "base64").toString())).toMatchObject({ status: 200, sourceMessageId: messageId });
    const t0 = Date.now();
    await client.publish({ url: `${dest.base}/${key}-late/ok`, body: "later", delay: 2 });
    await waitForHits(dest, `${key}-late`, 1, 15_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_900);
    // A run of requests leaves no request lines behind (Miniflare's per-request log is off unless --debug), and the
    // deliveries above no line per queue batch (Miniflare's info log, on before; WARN unless --debug).
    for (let i = 0; i < 20; i++) await client.logs({ filter: { messageId } });
    expect(server!.output()).not.toMatch(/GET \/v2\/logs/);
    expect(server!.output()).not.toMatch(/QUEUE\S*\s+\S*boomerang-deliveries/);
  });

  it("shares its state with npm run dev: a schedule and a DLQ entry made under one are there under the other", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER1.token });
    const key = uniqueKey("lean-state");
    const scheduleId = await client.schedules.create({ destination: `${dest.base}/${key}/ok`, cron: "0 0 1 1 *" });
    await client.publish({ url: `${dest.base}/${key}-fail/status/500`, body: "x", retries: 0 });
    await waitForHits(dest, `${key}-fail`, 1, 15_000);
    const { port, stateDir } = server!;
    await server!.kill();
    // npm run dev keeps wrangler's own log file bounded: one past 20 MB is rotated when it starts (and every 10 s).
    const logFile = path.join(__dirname, "..", "..", ".wrangler", "logs", "wrangler-dev.log");
    await mkdir(path.dirname(logFile), { recursive: true });
    await writeFile(logFile, Buffer.alloc(21 << 20, 0x2e));
    server = await startServer({ port, stateDir });
    expect((await stat(`${logFile}.1`)).size).toBeGreaterThanOrEqual(21 << 20);
    expect((await stat(logFile).catch(() => ({ size: 0 }))).size).toBeLessThan(20 << 20);
    await rm(`${logFile}.1`, { force: true });
    const dev = new Client({ baseUrl: server.url, token: USER1.token });
    expect((await dev.schedules.get(scheduleId.scheduleId)).destination).toBe(`${dest.base}/${key}/ok`);
    const dlq = await dev.dlq.listMessages();
    expect(dlq.messages.map((m) => m.url)).toContain(`${dest.base}/${key}-fail/status/500`);
    // And back to npm start: the entry made under npm start is still there, once.
    await server.kill();
    server = await startServer({ port, stateDir, lean: true });
    const again = await new Client({ baseUrl: server.url, token: USER1.token }).dlq.listMessages();
    expect(again.messages.filter((m) => m.url === `${dest.base}/${key}-fail/status/500`)).toHaveLength(1);
    expect(hitsFor(dest, `${key}-fail`)).toHaveLength(1);
  }, 180_000);

  it("with --d1-host, holds D1 in a process of its own, on the same state", async () => {
    const { port, stateDir } = server!;
    const key = uniqueKey("lean-d1");
    const before = new Client({ baseUrl: server!.url, token: USER1.token });
    await before.publish({ url: `${dest.base}/${key}-fail/status/500`, body: "x", retries: 0 });
    await waitForHits(dest, `${key}-fail`, 1, 15_000);
    await server!.kill();
    server = await startServer({ port, stateDir, lean: true, args: ["--d1-host"] });
    const hostPort = Number(/D1 is held by the D1 host, a workerd process on 127\.0\.0\.1:(\d+)/.exec(server!.output())?.[1]);
    const hostPid = await socketOwner(hostPort, 0);
    const apiPid = await socketOwner(Number(new URL(server!.url).port), 0);
    expect(hostPid).toBeGreaterThan(0);
    expect(apiPid).toBeGreaterThan(0);
    expect(hostPid).not.toBe(apiPid);
    // The database files are open in the D1 host only, and what was stored before it is there.
    const holders = await fileHolders(path.join(stateDir, "v3", "d1"));
    expect(holders.has(hostPid!)).toBe(true);
    expect(holders.has(apiPid!)).toBe(false);
    const client = new Client({ baseUrl: server!.url, token: USER1.token });
    expect((await client.dlq.listMessages()).messages.map((m) => m.url)).toContain(`${dest.base}/${key}-fail/status/500`);
    // A publish is stored, delivered, signed and called back; a repeated deduplication id gives the same message.
    const url = `${dest.base}/${key}/ok`;
    const { messageId } = (await client.publish({ url, body: "via the D1 host", callback: `${dest.base}/${key}-cb/ok`, deduplicationId: key })) as { messageId: string };
    const again = (await client.publish({ url, body: "via the D1 host", deduplicationId: key })) as { messageId: string };
    expect(again.messageId).toBe(messageId);
    const [hit] = await waitForHits(dest, key, 1, 15_000);
    expect(hit.headers["upstash-message-id"]).toBe(messageId);
    expect(await receiver.verify({ signature: hit.headers["upstash-signature"], body: "via the D1 host", url })).toBe(true);
    const [cb] = await waitForHits(dest, `${key}-cb`, 1, 15_000);
    expect(JSON.parse(Buffer.from(cb.body, "base64").toString())).toMatchObject({ status: 200, sourceMessageId: messageId });
    expect(hitsFor(dest, key)).toHaveLength(1);
  }, 180_000);

  it("stops its workerd processes and the relay, and frees the port, when the launcher alone is killed with SIGKILL", async () => {
    // After the D1 host test there are two workerd processes, the API's and the D1 host's (run alone: the API's),
    // and the attempt relay.
    const pids = [await socketOwner(server!.port, 0)];
    const hostPort = /D1 is held by the D1 host, a workerd process on 127\.0\.0\.1:(\d+)/.exec(server!.output())?.[1];
    if (hostPort) pids.push(await socketOwner(Number(hostPort), 0));
    const relayPort = /attempts are made by the relay, a Node process on 127\.0\.0\.1:(\d+)/.exec(server!.output())?.[1];
    expect(relayPort).toBeDefined();
    pids.push(await socketOwner(Number(relayPort), 0));
    for (const pid of pids) {
      expect(pid).toBeGreaterThan(0);
      expect(pid).not.toBe(server!.pid);
      expect(await alive(pid!)).toBe(true);
    }
    // No handler sees a SIGKILL: the kernel stops workerd (scripts/workerd-tied.sh); the relay sees its IPC channel close.
    process.kill(server!.pid!, "SIGKILL");
    const deadline = Date.now() + 10_000;
    const anyAlive = async () => (await Promise.all(pids.map((pid) => alive(pid!)))).some(Boolean);
    while (Date.now() < deadline && (await anyAlive())) await new Promise((r) => setTimeout(r, 100));
    for (const pid of pids) expect(await alive(pid!)).toBe(false);
    expect(await socketOwner(server!.port, 0)).toBeUndefined();
    await expect(fetch(server!.url, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
  }, 60_000);
});

/** Whether process `pid` still runs (a zombie that only waits for its parent to collect it does not count). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}
