/**
 * Rows written over a message's whole life, as D1 bills them (every index entry a write adds counts, and so do
 * deletes): the real code paths run against the real local D1 through a wrapper that adds up `rows_written` of
 * every statement. A message delivered at once must write at most 5 (docs/storage.md, "Rows written per message"):
 * it writes 4, because its claim only reads.
 */
import { createExecutionContext, createMessageBatch, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { deleteExpired } from "../../src/db/retention";
import type { DeliveryTask, Env } from "../../src/env";
import worker from "../../src/index";
import { BASE, api, dest, freshTenant, hits, uniqueKey, waitFor } from "./helpers";

/** The real bindings, with D1 statements metered and queue sends kept (nothing is consumed behind the test's back). */
function metered() {
  let rows = 0;
  const sent: DeliveryTask[] = [];
  const add = (r: D1Result | D1Result[]) => {
    for (const x of Array.isArray(r) ? r : [r]) rows += Number(x.meta?.rows_written ?? 0);
  };
  const wrap = (stmt: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(stmt, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop === "bind") return (...args: unknown[]) => wrap((value as (...a: unknown[]) => D1PreparedStatement).apply(target, args));
        if (prop === "run" || prop === "all") {
          return async () => {
            const r = await (value as () => Promise<D1Result>).apply(target);
            add(r);
            return r;
          };
        }
        if (prop === "first") {
          // Through all(), whose result carries the meta that first() drops.
          return async (column?: string) => {
            const r = await target.all<Record<string, unknown>>();
            add(r);
            const row = r.results[0];
            return row === undefined ? null : column === undefined ? row : row[column];
          };
        }
        if (prop === "raw") throw new Error("raw() is not metered");
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const db = new Proxy(env.DB, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => wrap(target.prepare(sql));
      if (prop === "batch") {
        return async (stmts: D1PreparedStatement[]) => {
          const r = await target.batch(stmts);
          add(r);
          return r;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const queue = {
    send: async (body: DeliveryTask) => void sent.push(body),
    sendBatch: async (items: { body: DeliveryTask }[]) => void sent.push(...items.map((i) => i.body)),
  } as unknown as Queue<DeliveryTask>;
  return { env: { ...(env as Env), DB: db, DELIVERIES: queue } as Env, rows: () => rows, sent };
}

describe("rows written per message", () => {
  it("a message delivered at once writes 4 rows over its life: publish, outcome, pruning (its claim writes nothing)", async () => {
    const t = await freshTenant(0);
    // A first request provisions the dev tenants once per isolate (dev mode); that is not part of any message.
    expect((await api("/v2/queues", { token: t.token })).status).toBe(200);
    const m = metered();
    const key = uniqueKey("rows");
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request(`${BASE}/v2/publish/${dest(`${key}/ok`)}`, { method: "POST", body: "hi", headers: { authorization: `Bearer ${t.token}` } }) as Request<
        unknown,
        IncomingRequestCfProperties
      >,
      m.env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(200);
    const { messageId } = await res.json<{ messageId: string }>();
    const afterPublish = m.rows();
    expect(afterPublish).toBe(2); // the row and its messages_tenant entry

    // The queue task the publish handed off, consumed by the real consumer.
    expect(m.sent.flatMap((b) => ("ids" in b ? b.ids : [b.id]))).toContain(messageId);
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "task-1", timestamp: new Date(), attempts: 1, body: { ids: [messageId] } }]);
    await worker.queue(batch, m.env);
    await waitFor("the delivery", async () => ((await hits(key)).length === 1 ? true : undefined));
    const row = await env.DB.prepare("SELECT state, finished_at, json_array_length(log) AS entries FROM messages WHERE id = ?1").bind(messageId).first<{ state: string; finished_at: number; entries: number }>();
    expect(row?.state).toBe("DELIVERED");
    expect(row?.entries).toBe(3);
    expect(m.rows() - afterPublish).toBe(1); // the outcome's UPDATE (with the ACTIVE entry); the claim only read

    // Retention's delete of the finished message, as the sweeper issues it.
    const before = m.rows();
    const [deleted] = await m.env.DB.batch([deleteExpired(m.env.DB, [messageId], row!.finished_at + 1)]);
    expect(deleted.results.length).toBe(1);
    expect(m.rows() - before).toBe(1);
    expect(m.rows()).toBe(4);
  });

  it("a workflow step writes 5 rows over its life: its message's 4 and the append to its run's history", async () => {
    const t = await freshTenant(0);
    expect((await api("/v2/queues", { token: t.token })).status).toBe(200);
    const m = metered();
    const key = uniqueKey("wfrows");
    const url = dest(`${key}/ok`);
    const runId = `wfr_${key}`;
    const publish = async (init: boolean, body: string) => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request(`${BASE}/v2/publish/${url}`, {
          method: "POST",
          body,
          headers: { authorization: `Bearer ${t.token}`, "upstash-workflow-runid": runId, "upstash-workflow-init": String(init), "upstash-workflow-url": url },
        }) as Request<unknown, IncomingRequestCfProperties>,
        m.env,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(res.status).toBe(200);
      return (await res.json<{ messageId: string }>()).messageId;
    };
    await publish(true, '{"order":1}');
    const started = m.rows();
    expect(started).toBe(4); // the first message's 2, and the run's row with its workflow_runs_created entry
    const stepId = await publish(false, '{"stepId":1,"stepName":"a","stepType":"Run","out":"1","concurrent":1}');
    expect(m.rows() - started).toBe(3); // the message's 2 and the history append
    const batch = createMessageBatch<DeliveryTask>("boomerang-deliveries", [{ id: "task-wf", timestamp: new Date(), attempts: 1, body: { ids: [stepId] } }]);
    await worker.queue(batch, m.env);
    await waitFor("the step's delivery", async () => ((await hits(key)).length >= 1 ? true : undefined));
    const row = await env.DB.prepare("SELECT state, finished_at FROM messages WHERE id = ?1").bind(stepId).first<{ state: string; finished_at: number }>();
    expect(row?.state).toBe("DELIVERED");
    // What the endpoint got: the history up to this step, the run's first message first.
    const hit = (await hits(key)).find((h) => h.headers["upstash-message-id"] === stepId)!;
    const history = JSON.parse(atob(hit.body)) as { messageId: string; body: string; callType: string }[];
    expect(history.map((h) => atob(h.body))).toEqual(['{"order":1}', '{"stepId":1,"stepName":"a","stepType":"Run","out":"1","concurrent":1}']);
    expect(m.rows() - started).toBe(4); // and the outcome
    const [deleted] = await m.env.DB.batch([deleteExpired(m.env.DB, [stepId], row!.finished_at + 1)]);
    expect(deleted.results.length).toBe(1);
    expect(m.rows() - started).toBe(5);
  });
});

