import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { shardEnv } from "../../src/db/shards";
import { heldWork } from "../../src/db/sweeps";
import { sweep, sweepAll } from "../../src/delivery/sweeper";
import type { Env } from "../../src/env";
import { gateName, gateStub } from "../../src/objects/gate";
import { api, dbOf, dest, freshTenant, hits, publish, publishOk, uniqueKey, waitFor, waitForHits } from "./helpers";

async function enqueue(token: string, queue: string, destination: string, init: RequestInit = {}) {
  const res = await api(`/v2/enqueue/${queue}/${destination}`, { method: "POST", token, ...init });
  expect(res.status).toBe(200);
  return (await res.json<{ messageId: string }>()).messageId;
}

describe("recovery of gated messages", () => {
  it("a held message whose hand-off to its gate was lost is handed over again by the sweeper", async () => {
    const t = await freshTenant();
    const key = uniqueKey("lostgate");
    const q = uniqueKey("lq");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, paused: true }) });
    const id = await enqueue(t.token, q, dest(`${key}/ok`));
    const gate = gateStub(env, gateName("queue", t.tenantId, q));
    // Simulate the crash: the gate never got the message.
    await gate.release([id]);
    expect((await gate.info()).waiting).toBe(0);
    await gate.configure({ paused: false });
    await api(`/v2/queues/${q}/resume`, { method: "POST", token: t.token });
    await dbOf(t).prepare("UPDATE messages SET due_at = ?2 WHERE id = ?1").bind(id, Date.now() - 60_000).run();
    const report = await sweepAll(env, Date.now());
    expect(report.regated).toBeGreaterThanOrEqual(1);
    await waitForHits(key, 1);
  });

  it("a slot whose release was lost is freed by reconciliation, so the queue does not stall", async () => {
    const t = await freshTenant();
    const key = uniqueKey("stall");
    const q = uniqueKey("sq");
    const first = await enqueue(t.token, q, dest(`${key}/ok`), { body: "1" });
    await waitForHits(key, 1);
    await waitFor("first finished", async () => (await dbOf(t).prepare("SELECT finished_at FROM messages WHERE id = ?1").bind(first).first("finished_at")) ?? undefined);
    const gate = gateStub(env, gateName("queue", t.tenantId, q));
    // Simulate the lost release: the finished message still holds the queue's only slot.
    await runInDurableObject(gate, async (_instance, state) => {
      state.storage.sql.exec("INSERT INTO inflight (id, since) VALUES (?, ?)", first, 0);
    });
    expect((await gate.info()).inflight).toBe(1);
    const second = await enqueue(t.token, q, dest(`${key}/ok`), { body: "2" });
    await new Promise((r) => setTimeout(r, 300));
    expect((await hits(key)).length).toBe(1); // stalled behind the stale slot
    await dbOf(t).prepare("UPDATE messages SET due_at = ?2 WHERE id = ?1").bind(second, Date.now() - 60_000).run();
    await gate.reconcile("queue", -1);
    const got = await waitForHits(key, 2);
    expect(atob(got[1].body)).toBe("2");
  });
});

describe("the sweeper's repair of held work", () => {
  /** Makes every unfinished message of a tenant look held long past due (`agoMs`). */
  async function age(t: { shard: number; tenantId: string }, agoMs: number, queue?: string) {
    await dbOf(t)
      .prepare("UPDATE messages SET due_at = ?2 WHERE tenant_id = ?1 AND finished_at IS NULL AND (?3 IS NULL OR queue_name = ?3)")
      .bind(t.tenantId, Date.now() - agoMs, queue ?? null)
      .run();
  }

  it("a lost hand-off in one queue is repaired by the next sweep while another queue is paused with 1,000 waiting", async () => {
    const t = await freshTenant();
    const key = uniqueKey("fair");
    const paused = uniqueKey("pz");
    const other = uniqueKey("oq");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: paused, paused: true }) });
    for (let i = 0; i < 10; i++) {
      const entries = Array.from({ length: 100 }, () => ({ destination: dest(`${key}-paused/ok`), queue: paused }));
      expect((await api(`/v2/batch`, { method: "POST", token: t.token, body: JSON.stringify(entries) })).status).toBe(200);
    }
    await age(t, 120_000, paused);
    // The other queue's message is stored but its gate never heard of it (a crash between the write and the hand-off).
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: other, paused: true }) });
    const lost = await enqueue(t.token, other, dest(`${key}/ok/lost`));
    const gate = gateStub(env, gateName("queue", t.tenantId, other));
    await gate.release([lost]);
    expect((await gate.info()).waiting).toBe(0);
    expect((await api(`/v2/queues/${other}/resume`, { method: "POST", token: t.token })).status).toBe(200);
    await dbOf(t).prepare("UPDATE messages SET due_at = ?2 WHERE id = ?1").bind(lost, Date.now() - 60_000).run();
    await new Promise((r) => setTimeout(r, 200));
    expect(await hits(key)).toEqual([]);
    await sweep(shardEnv(env as Env, t.shard), Date.now(), { pruneBudgetMs: 0 });
    await waitForHits(key, 1);
    // The paused queue stays paused: nothing of it was delivered.
    expect(await hits(`${key}-paused`)).toEqual([]);
  });

  it("walks every held message over successive sweeps, a page at a time", async () => {
    const t = await freshTenant();
    const q = uniqueKey("wq");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, paused: true }) });
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) mine.push(await enqueue(t.token, q, dest(`${uniqueKey("w")}/ok`)));
    await age(t, 60_000, q);
    const stale = Date.now() - 15_000;
    const { n } = (await dbOf(t).prepare("SELECT count(*) AS n FROM messages WHERE finished_at IS NULL AND held = 1 AND due_at < ?1").bind(stale).first<{ n: number }>())!;
    const visited: string[] = [];
    let cursor = "";
    for (let pages = 0; pages < 10_000; pages++) {
      const work = await heldWork(dbOf(t), stale, 0, 7, cursor);
      visited.push(...work.walk.map((h) => h.id));
      cursor = work.next;
      if (!cursor) break;
    }
    expect(visited.length).toBe(n);
    expect(new Set(visited).size).toBe(n);
    for (const id of mine) expect(visited).toContain(id);
  });

  it("hands ids back without the limits they carried", async () => {
    const t = await freshTenant();
    const key = uniqueKey("walk");
    const fk = uniqueKey("fk");
    // An old message of the key carried parallelism 1; the key's gate has had parallelism 5 since.
    const old = await publishOk(dest(`${key}/ok`), {
      token: t.token,
      headers: { "upstash-flow-control-key": fk, "upstash-flow-control-value": "parallelism=1", "upstash-delay": "1h" },
    });
    const gate = gateStub(env, gateName("flow", t.tenantId, fk));
    await gate.release([old]); // its hand-off lost
    await publishOk(dest(`${key}/ok/new`), { token: t.token, headers: { "upstash-flow-control-key": fk, "upstash-flow-control-value": "parallelism=5" } });
    await waitForHits(`${key}/ok/new`, 1);
    expect((await gate.info()).parallelism).toBe(5);
    await dbOf(t).prepare("UPDATE messages SET due_at = ?2, not_before = 0 WHERE id = ?1").bind(old, Date.now() - 60_000).run();
    await sweep(shardEnv(env as Env, t.shard), Date.now(), { pruneBudgetMs: 0 });
    await waitForHits(key, 2);
    expect((await gate.info()).parallelism).toBe(5);
  });

  it("cancels, instead of delivering, held messages whose queue was deleted half-way", async () => {
    const t = await freshTenant();
    const key = uniqueKey("qgone");
    const q = uniqueKey("gq");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, paused: true }) });
    const ids = [await enqueue(t.token, q, dest(`${key}/ok`)), await enqueue(t.token, q, dest(`${key}/ok`))];
    // The delete stopped after removing the queue and draining its gate, before cancelling anything.
    await dbOf(t).prepare("DELETE FROM queues WHERE tenant_id = ?1 AND name = ?2").bind(t.tenantId, q).run();
    await gateStub(env, gateName("queue", t.tenantId, q)).drain();
    await age(t, 60_000, q);
    await sweep(shardEnv(env as Env, t.shard), Date.now(), { pruneBudgetMs: 0 });
    for (const id of ids) {
      const row = await dbOf(t).prepare("SELECT state FROM messages WHERE id = ?1").bind(id).first("state");
      expect(row).toBe("CANCELED");
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await hits(key)).toEqual([]);
  });

  it("deleting a queue cancels its waiting messages by name, even those its gate no longer lists", async () => {
    const t = await freshTenant();
    const key = uniqueKey("qdel");
    const q = uniqueKey("dq");
    await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: q, paused: true }) });
    const listed = await enqueue(t.token, q, dest(`${key}/ok`));
    const unlisted = await enqueue(t.token, q, dest(`${key}/ok`));
    await gateStub(env, gateName("queue", t.tenantId, q)).release([unlisted]); // its hand-off lost
    expect((await api(`/v2/queues/${q}`, { method: "DELETE", token: t.token })).status).toBe(200);
    for (const id of [listed, unlisted]) {
      expect(await dbOf(t).prepare("SELECT state FROM messages WHERE id = ?1").bind(id).first("state")).toBe("CANCELED");
    }
  });
});

describe("details", () => {
  it("no callback for an attempt whose message was cancelled while it ran", async () => {
    const t = await freshTenant();
    const key = uniqueKey("cxr");
    const res = await publish(dest(`${key}/sleep/500`), {
      token: t.token,
      headers: { "upstash-callback": dest(`${key}-cb/ok`), "upstash-timeout": "200ms", "upstash-retries": "2" },
    });
    const { messageId } = await res.json<{ messageId: string }>();
    await waitForHits(key, 1);
    expect((await api(`/v2/messages/${messageId}`, { method: "DELETE", token: t.token })).status).toBe(200);
    await waitFor("cancelled", async () => {
      const r = await (await api(`/v2/logs?messageId=${messageId}&state=CANCELED`, { token: t.token })).json<{ logs: unknown[] }>();
      return r.logs.length ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(await hits(`${key}-cb`)).toEqual([]);
    expect((await hits(key)).length).toBe(1);
  });

  it("a batch entry with Upstash-Header-Forward keeps its Content-Type", async () => {
    const t = await freshTenant();
    const key = uniqueKey("bhf");
    const res = await api(`/v2/batch`, {
      method: "POST",
      token: t.token,
      body: JSON.stringify([{ destination: dest(`${key}/ok`), body: "{}", headers: { "Content-Type": "application/json", "Upstash-Header-Forward": "true" } }]),
    });
    expect(res.status).toBe(200);
    const [h] = await waitForHits(key, 1);
    expect(h.headers["content-type"]).toBe("application/json");
  });

  it("Upstash-Queue-Name on a publish is refused with a pointer to enqueue", async () => {
    const res = await publish(dest("x/ok"), { headers: { "upstash-queue-name": "q" } });
    expect(res.status).toBe(400);
    expect((await res.json<{ error: string }>()).error).toMatch(/enqueue/);
  });

  it("Upstash-Cron and Upstash-Schedule-Id on a publish, enqueue or batch entry are refused with a pointer to schedules", async () => {
    const before = Number(await env.DB.prepare("SELECT count(*) AS n FROM messages").first("n"));
    for (const headers of [{ "upstash-cron": "* * * * *" }, { "upstash-schedule-id": "s1" }] as Record<string, string>[]) {
      for (const path of [`/v2/publish/${dest("x/ok")}`, `/v2/enqueue/q-cron/${dest("x/ok")}`]) {
        const res = await api(path, { method: "POST", headers });
        expect(res.status, path).toBe(400);
        expect((await res.json<{ error: string }>()).error).toMatch(/applies to schedules.*POST \/v2\/schedules/);
      }
      const query = Object.entries(headers).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
      expect((await api(`/v2/publish/${dest("x/ok")}?${query}`, { method: "POST" })).status).toBe(400);
      const batch = await api("/v2/batch", { method: "POST", body: JSON.stringify([{ destination: dest("x/ok"), headers }]) });
      expect(batch.status).toBe(200);
      expect((await batch.json<{ error: string }[]>())[0].error).toMatch(/applies to schedules/);
    }
    expect(Number(await env.DB.prepare("SELECT count(*) AS n FROM messages").first("n"))).toBe(before);
  });

  it("flow-control parallelism above MAX_PARALLELISM is a 412", async () => {
    const res = await publish(dest("x/ok"), { headers: { "upstash-flow-control-key": "k", "upstash-flow-control-value": "parallelism=5000" } });
    expect(res.status).toBe(412);
  });

  it("schedules: dedup of the create call, redaction of produced messages, the schedule quota", async () => {
    const t = await freshTenant();
    const key = uniqueKey("sdr");
    const create = (headers: Record<string, string>, body = "secret") =>
      api(`/v2/schedules/${dest(`${key}/ok`)}`, { method: "POST", token: t.token, headers: { "upstash-cron": "0 0 1 1 *", ...headers }, body });
    const a = await create({ "upstash-deduplication-id": "once", "upstash-redact-fields": "body" });
    expect(a.status).toBe(200);
    const { scheduleId } = await a.json<{ scheduleId: string }>();
    const b = await create({ "upstash-deduplication-id": "once" });
    expect(b.status).toBe(202);
    expect((await b.json<{ scheduleId: string }>()).scheduleId).toBe(scheduleId);
    expect(await (await api(`/v2/schedules`, { token: t.token })).json<unknown[]>()).toHaveLength(1);
    // fire it: the produced message is redacted on read paths, delivered with the original body
    await dbOf(t).prepare("UPDATE schedules SET next_schedule_time = ?2 WHERE id = ?1").bind(scheduleId, Date.now() - 1).run();
    const { runDurableObjectAlarm } = await import("cloudflare:test");
    const { timerStub } = await import("../../src/objects/schedule-timer");
    await runDurableObjectAlarm(timerStub(env, t.tenantId, scheduleId));
    const [h] = await waitForHits(key, 1);
    expect(atob(h.body)).toBe("secret");
    await waitFor("delivered log", async () => {
      const l = await (await api(`/v2/logs?scheduleId=${scheduleId}&state=DELIVERED`, { token: t.token })).json<{ logs: { body: string }[] }>();
      return l.logs[0] ? l.logs[0] : undefined;
    }).then((entry) => expect(atob(entry.body)).toMatch(/^REDACTED:[0-9a-f]{64}$/));
  });

  it("per-tenant quotas: the queue and schedule past the maximum get 412, replacing existing ones still works", async () => {
    const t = await freshTenant();
    for (let i = 0; i < 20; i++) {
      expect((await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: `q${i}` }) })).status).toBe(200);
    }
    expect((await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: "q20" }) })).status).toBe(412);
    const enq = await api(`/v2/enqueue/q21/${dest("quota/ok")}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } });
    expect(enq.status).toBe(412);
    expect((await api(`/v2/enqueue/q3/${dest("quota/ok")}`, { method: "POST", token: t.token, headers: { "upstash-delay": "1h" } })).status).toBe(200);
    expect((await api(`/v2/queues`, { method: "POST", token: t.token, body: JSON.stringify({ queueName: "q1", parallelism: 2 }) })).status).toBe(200);
    const sched = (id: string) =>
      api(`/v2/schedules/${dest("quota/ok")}`, { method: "POST", token: t.token, headers: { "upstash-cron": "0 0 1 1 *", "upstash-schedule-id": id } });
    for (let i = 0; i < 20; i++) expect((await sched(`s${i}`)).status).toBe(200);
    const over = await sched("s20");
    expect(over.status).toBe(412);
    expect((await over.json<{ error: string }>()).error).toMatch(/MAX_SCHEDULES/);
    expect((await sched("s5")).status).toBe(200);
    await api(`/v2/messages`, { method: "DELETE", token: t.token });
  });
});
