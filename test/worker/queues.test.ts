import { describe, expect, it } from "vitest";
import { api, dbOf, dest, freshTenant, hits, uniqueKey, waitFor, waitForHits } from "./helpers";

type QueueView = { name: string; parallelism: number; lag: number; paused: boolean; createdAt: number; updatedAt: number };

async function enqueue(token: string, queue: string, destination: string, init: RequestInit = {}) {
  const res = await api(`/v2/enqueue/${queue}/${destination}`, { method: "POST", token, ...init });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`enqueue answered ${res.status}: ${text}`);
  return (JSON.parse(text) as { messageId: string }).messageId;
}

interface TimedHit {
  time: number;
  endTime: number;
  body: string;
  headers: Record<string, string>;
}

describe("FIFO queues", () => {
  it("delivers 100 messages of a parallelism-1 queue in order with no overlap", async () => {
    const t = await freshTenant();
    const key = uniqueKey("fifo");
    const q = uniqueKey("q");
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) ids.push(await enqueue(t.token, q, dest(`${key}/sleep/15`), { body: String(i) }));
    const got = (await waitForHits(key, 100, 60_000)) as unknown as TimedHit[];
    expect(got.map((h) => Number(atob(h.body)))).toEqual([...Array(100).keys()]);
    for (let i = 1; i < got.length; i++) expect(got[i].time).toBeGreaterThanOrEqual(got[i - 1].endTime);
    expect(got.map((h) => h.headers["upstash-message-id"])).toEqual(ids);
    const view = await (await api(`/v2/queues/${q}`, { token: t.token })).json<QueueView>();
    expect(view).toMatchObject({ name: q, parallelism: 1, lag: 0, paused: false });
  }, 90_000);

  it("never exceeds parallelism N", async () => {
    const t = await freshTenant();
    const key = uniqueKey("par");
    const q = uniqueKey("q3");
    expect((await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, parallelism: 3 }) })).status).toBe(200);
    for (let i = 0; i < 12; i++) await enqueue(t.token, q, dest(`${key}/sleep/150`));
    const got = (await waitForHits(key, 12, 30_000)) as unknown as TimedHit[];
    await waitFor("all finished", async () => ((await hits(key)).every((h) => (h as unknown as TimedHit).endTime) ? true : undefined));
    const done = (await hits(key)) as unknown as TimedHit[];
    let maxOverlap = 0;
    for (const h of done) {
      const overlapping = done.filter((o) => o.time <= h.time && o.endTime > h.time).length;
      maxOverlap = Math.max(maxOverlap, overlapping);
    }
    expect(got.length).toBe(12);
    expect(maxOverlap).toBe(3);
  }, 60_000);

  it("holds the next message until the previous one's callback has finished", async () => {
    const t = await freshTenant();
    const key = uniqueKey("cbq");
    const q = uniqueKey("qcb");
    await enqueue(t.token, q, dest(`${key}/ok/first`), { headers: { "upstash-callback": dest(`${key}/sleep/600/callback`) } });
    await enqueue(t.token, q, dest(`${key}/ok/second`));
    const got = (await waitForHits(key, 3, 10_000)) as unknown as (TimedHit & { path: string })[];
    const callback = got.find((h) => h.path.endsWith("/callback"))!;
    const second = got.find((h) => h.path.endsWith("/second"))!;
    expect(second.time).toBeGreaterThanOrEqual(callback.endTime);
  });

  it("cancelling the callback that holds a queue frees the slot: the next message goes", async () => {
    const t = await freshTenant();
    const key = uniqueKey("cbc");
    const q = uniqueKey("qcc");
    // The first message's callback waits an hour in the scheduler, holding the queue (parallelism 1).
    const first = await enqueue(t.token, q, dest(`${key}/ok/first`), {
      headers: { "upstash-callback": dest(`${key}/ok/callback`), "upstash-callback-delay": "1h" },
    });
    await enqueue(t.token, q, dest(`${key}/ok/second`));
    await waitForHits(key, 1);
    await new Promise((r) => setTimeout(r, 500));
    expect((await hits(key)).map((h) => h.path.split("/").pop())).toEqual(["first"]);
    const callback = await dbOf(t).prepare("SELECT id FROM messages WHERE parent_id = ?1").bind(first).first<{ id: string }>();
    expect((await api(`/v2/messages/${callback!.id}`, { method: "DELETE", token: t.token })).status).toBe(200);
    const got = await waitForHits(key, 2);
    expect(got.map((h) => h.path.split("/").pop())).toEqual(["first", "second"]);
  });

  it("a paused queue holds its messages (exact lag) and resumes in order", async () => {
    const t = await freshTenant();
    const key = uniqueKey("pz");
    const q = uniqueKey("qp");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, parallelism: 1, paused: true }) });
    for (let i = 0; i < 5; i++) await enqueue(t.token, q, dest(`${key}/ok`), { body: String(i) });
    await new Promise((r) => setTimeout(r, 400));
    expect(await hits(key)).toEqual([]);
    const paused = await (await api(`/v2/queues/${q}`, { token: t.token })).json<QueueView>();
    expect(paused).toMatchObject({ paused: true, lag: 5 });
    expect((await api(`/v2/queues/${q}/resume`, { method: "POST", token: t.token })).status).toBe(200);
    const got = await waitForHits(key, 5);
    expect(got.map((h) => atob(h.body))).toEqual(["0", "1", "2", "3", "4"]);
  });

  it("lists, refuses bad input, deletes (cancelling what waits), tenants apart", async () => {
    const t = await freshTenant();
    const other = await freshTenant();
    const q = uniqueKey("ql");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, parallelism: 1, paused: true }) });
    const waiting = await enqueue(t.token, q, dest("ql/ok"));
    const list = await (await api(`/v2/queues`, { token: t.token })).json<QueueView[]>();
    expect(list.map((x) => x.name)).toEqual([q]);
    expect(await (await api(`/v2/queues`, { token: other.token })).json()).toEqual([]);
    expect((await api(`/v2/queues/${q}`, { token: other.token })).status).toBe(404);
    for (const body of [{ queueName: "bad name" }, { queueName: q, parallelism: 0 }, { queueName: q, parallelism: 1.5 }, {}, [1]]) {
      const res = await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, parallelism: 5000 }) })).status).toBe(412);
    expect((await api(`/v2/enqueue/bad!name/${dest("x/ok")}`, { method: "POST", token: t.token })).status).toBe(400);
    expect((await api(`/v2/queues/${q}`, { method: "DELETE", token: t.token })).status).toBe(200);
    expect((await api(`/v2/queues/${q}`, { token: t.token })).status).toBe(404);
    expect((await api(`/v2/messages/${waiting}`, { token: t.token })).status).toBe(404);
    const logs = await (await api(`/v2/logs?messageId=${waiting}&state=CANCELED`, { token: t.token })).json<{ logs: unknown[] }>();
    expect(logs.logs.length).toBe(1);
  });

  it("cancelling a waiting message frees its place; the rest go on in order", async () => {
    const t = await freshTenant();
    const key = uniqueKey("cx");
    const q = uniqueKey("qc");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, paused: true }) });
    const a = await enqueue(t.token, q, dest(`${key}/ok`), { body: "a" });
    await enqueue(t.token, q, dest(`${key}/ok`), { body: "b" });
    expect((await api(`/v2/messages/${a}`, { method: "DELETE", token: t.token })).status).toBe(200);
    const view = await (await api(`/v2/queues/${q}`, { token: t.token })).json<QueueView>();
    expect(view.lag).toBe(1);
    await api(`/v2/queues/${q}/resume`, { method: "POST", token: t.token });
    const got = await waitForHits(key, 1);
    expect(got.map((h) => atob(h.body))).toEqual(["b"]);
  });
});
