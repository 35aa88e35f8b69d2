/**
 * Bulk calls with their ids or filters in a JSON body, as the Python (`cancel_many`, `dlq.delete_many`) and Go
 * (`CancelMany`, `DeleteMany`) SDKs send them, and every way a body could fall through to "act on everything".
 * Each bad body must answer 400 and change nothing; only the SDKs' own "all" forms act on everything.
 */
import { describe, expect, it } from "vitest";
import { routingPath } from "../../src/app";
import { type Dlq, api, dest, failInto, freshTenant, publishOk, uniqueKey, waitFor } from "./helpers";

type Tenant = Awaited<ReturnType<typeof freshTenant>>;

const json = (body: unknown): RequestInit => ({
  body: typeof body === "string" ? body : JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

/** `n` delayed (so still pending) messages of the tenant. */
async function pendingMessages(t: Tenant, n: number, headers: Record<string, string> = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(await publishOk(dest("bulk-body/ok"), { token: t.token, headers: { "upstash-delay": "1h", ...headers } }));
  }
  return ids;
}

/** Which of `ids` are still pending (readable through GET /v2/messages/{id}). */
async function stillPending(t: Tenant, ids: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) if ((await api(`/v2/messages/${id}`, { token: t.token })).status === 200) out.push(id);
  return out;
}

async function dlqIds(t: Tenant): Promise<string[]> {
  const body = await (await api(`/v2/dlq`, { token: t.token })).json<Dlq>();
  return body.messages.map((m) => m.dlqId as string).sort();
}

async function expect400(res: Response, pattern: RegExp): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(400);
  expect((JSON.parse(text) as { error: string }).error).toMatch(pattern);
}

/** Bodies that must be refused by every bulk endpoint, with what the error must name. */
const BAD_BODIES: [string, string | unknown, RegExp][] = [
  ["not JSON", "{messageIds: [", /not valid JSON/],
  ["a JSON array", ["a", "b"], /JSON object/],
  ["a JSON string", '"msg_1"', /JSON object/],
  ["an empty object", {}, /names no filter/],
  ["only paging", { count: 5 }, /names no filter/],
  ["null ids", { messageIds: null, dlqIds: null }, /null/],
  ["an unknown field", { messageIdz: ["x"], dlqIdz: ["x"] }, /unknown filter "(messageIdz|dlqIdz)"/],
  ["a boolean", { all: true }, /all/],
  ["a nested object", { filter: { label: "x" } }, /filter/],
  ["a fraction", { messageIds: [1.5], dlqIds: [1.5] }, /not a string or an integer/],
  ["an empty label list", { label: [] }, /empty list/],
  ["an empty label", { label: "" }, /empty value/],
  ["the token", { qstash_token: "x" }, /not a filter/],
];

describe("DELETE /v2/messages with a JSON body", () => {
  it("cancels exactly the ids named in the body (Python cancel_many, Go CancelMany)", async () => {
    const t = await freshTenant();
    const [a, b, c] = await pendingMessages(t, 3);
    const res = await api(`/v2/messages`, { method: "DELETE", token: t.token, ...json({ messageIds: [a, b] }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ cancelled: 2 });
    expect(await stillPending(t, [a, b, c])).toEqual([c]);
  });

  it("never cancels another tenant's message named in the body", async () => {
    const t = await freshTenant();
    const other = await freshTenant();
    const [theirs] = await pendingMessages(other, 1);
    const res = await api(`/v2/messages`, { method: "DELETE", token: t.token, ...json({ messageIds: [theirs] }) });
    expect(await res.json()).toEqual({ cancelled: 0 });
    expect(await stillPending(other, [theirs])).toEqual([theirs]);
  });

  it("reads filters from the body (label, url) and acts only on what they match", async () => {
    const t = await freshTenant();
    const label = uniqueKey("lb");
    const labelled = await pendingMessages(t, 2, { "upstash-label": label });
    const plain = await pendingMessages(t, 1);
    const res = await api(`/v2/messages`, { method: "DELETE", token: t.token, ...json({ label, url: [dest("bulk-body/ok")] }) });
    expect(await res.json()).toEqual({ cancelled: 2 });
    expect(await stillPending(t, [...labelled, ...plain])).toEqual(plain);
  });

  it("an empty id list cancels nothing", async () => {
    const t = await freshTenant();
    const ids = await pendingMessages(t, 2);
    const res = await api(`/v2/messages`, { method: "DELETE", token: t.token, ...json({ messageIds: [] }) });
    expect(await res.json()).toEqual({ cancelled: 0 });
    expect(await stillPending(t, ids)).toEqual(ids);
  });

  for (const [what, body, error] of BAD_BODIES) {
    it(`a body with ${what} is a 400 and cancels nothing`, async () => {
      const t = await freshTenant();
      const ids = await pendingMessages(t, 2);
      await expect400(await api(`/v2/messages`, { method: "DELETE", token: t.token, ...json(body) }), error);
      expect(await stillPending(t, ids)).toEqual(ids);
    });
  }

  it("filters in both the query and the body are a 400 and cancel nothing", async () => {
    const t = await freshTenant();
    const ids = await pendingMessages(t, 2);
    const res = await api(`/v2/messages?count=1`, { method: "DELETE", token: t.token, ...json({ messageIds: [ids[0]] }) });
    await expect400(res, /not both/);
    expect(await stillPending(t, ids)).toEqual(ids);
  });

  it("a body over 1 MiB is a 413 and cancels nothing", async () => {
    const t = await freshTenant();
    const ids = await pendingMessages(t, 1);
    const huge = { messageIds: Array.from({ length: 40_000 }, (_, i) => `msg_${i}_${"x".repeat(20)}`) };
    const res = await api(`/v2/messages`, { method: "DELETE", token: t.token, ...json(huge) });
    expect(res.status).toBe(413);
    expect(await stillPending(t, ids)).toEqual(ids);
  });

  it("cancels everything only in the SDKs' own 'all' forms: JS ?count=, Python no body, Go empty JSON body", async () => {
    const t = await freshTenant();
    const forms: [string, string, RequestInit][] = [
      ["JS messages.cancel({all: true})", `/v2/messages?count=100`, {}],
      ["Python cancel_all()", `/v2/messages`, {}],
      ["Go CancelAll()", `/v2/messages`, { headers: { "content-type": "application/json" } }],
    ];
    for (const [form, path, init] of forms) {
      const ids = await pendingMessages(t, 2);
      const res = await api(path, { method: "DELETE", token: t.token, ...init });
      expect(await res.json(), form).toEqual({ cancelled: 2 });
      expect(await stillPending(t, ids), form).toEqual([]);
    }
  });
});

describe("DELETE /v2/dlq and POST /v2/dlq/retry with a JSON body", () => {
  it("deletes exactly the DLQ ids named in the body (Python delete_many, Go DeleteMany)", async () => {
    const t = await freshTenant();
    await failInto(t.token, 4, uniqueKey("dd"));
    const all = await dlqIds(t);
    const res = await api(`/v2/dlq`, { method: "DELETE", token: t.token, ...json({ dlqIds: all.slice(0, 2) }) });
    expect(await res.json()).toEqual({ deleted: 2 });
    expect(await dlqIds(t)).toEqual(all.slice(2));
  });

  it("retries exactly the DLQ ids named in the body", async () => {
    const t = await freshTenant();
    await failInto(t.token, 3, uniqueKey("dr"));
    const all = await dlqIds(t);
    const res = await api(`/v2/dlq/retry`, {
      method: "POST",
      token: t.token,
      body: JSON.stringify({ dlqIds: [all[1]] }),
      headers: { "content-type": "application/json", "upstash-delay": "1h" },
    });
    expect(res.status).toBe(201);
    const body = await res.json<{ responses: { messageId: string }[] }>();
    expect(body.responses.length).toBe(1);
    expect(await dlqIds(t)).toEqual([all[0], all[2]]);
    expect(await stillPending(t, [body.responses[0].messageId])).toEqual([body.responses[0].messageId]);
  });

  it("an empty id list deletes and retries nothing", async () => {
    const t = await freshTenant();
    await failInto(t.token, 2, uniqueKey("de"));
    const before = await dlqIds(t);
    expect(await (await api(`/v2/dlq`, { method: "DELETE", token: t.token, ...json({ dlqIds: [] }) })).json()).toEqual({ deleted: 0 });
    const retry = await api(`/v2/dlq/retry`, { method: "POST", token: t.token, ...json({ dlqIds: [] }) });
    expect(retry.status).toBe(201);
    expect(await retry.json()).toEqual({ responses: [] });
    expect(await dlqIds(t)).toEqual(before);
  });

  it("a bad body is a 400 on both and changes nothing", async () => {
    const t = await freshTenant();
    await failInto(t.token, 2, uniqueKey("db"));
    const before = await dlqIds(t);
    for (const [what, body, error] of [...BAD_BODIES, ["host, refused on the DLQ", { host: "127.0.0.1" }, /not supported here/]] as const) {
      for (const [method, path] of [["DELETE", "/v2/dlq"], ["POST", "/v2/dlq/retry"]] as const) {
        const res = await api(path, { method, token: t.token, ...json(body) });
        expect(res.status, `${method} ${path} with ${what}`).toBe(400);
        expect((await res.json<{ error: string }>()).error, `${method} ${path} with ${what}`).toMatch(error);
      }
    }
    await expect400(await api(`/v2/dlq?count=1`, { method: "DELETE", token: t.token, ...json({ dlqIds: [before[0]] }) }), /not both/);
    expect(await dlqIds(t)).toEqual(before);
  });

  it("deletes everything only with no filter and no body (JS {all: true}, Go empty JSON body)", async () => {
    const t = await freshTenant();
    await failInto(t.token, 2, uniqueKey("da"));
    expect(await (await api(`/v2/dlq`, { method: "DELETE", token: t.token, headers: { "content-type": "application/json" } })).json()).toEqual({
      deleted: 2,
    });
    await failInto(t.token, 2, uniqueKey("da"));
    expect(await (await api(`/v2/dlq?count=100`, { method: "DELETE", token: t.token })).json()).toEqual({ deleted: 2 });
    expect(await dlqIds(t)).toEqual([]);
  });
});

describe("deletes of named resources are idempotent", () => {
  it("deleting a URL group that does not exist answers 200 and changes nothing", async () => {
    const t = await freshTenant();
    await api(`/v2/topics/kept/endpoints`, { method: "POST", token: t.token, ...json({ endpoints: [{ url: dest("g/1") }] }) });
    const res = await api(`/v2/topics/never-made`, { method: "DELETE", token: t.token });
    expect(res.status).toBe(200);
    expect((await api(`/v2/topics/never-made`, { token: t.token })).status).toBe(404);
    expect((await (await api(`/v2/topics`, { token: t.token })).json<{ name: string }[]>()).map((g) => g.name)).toEqual(["kept"]);
  });

  it("removing endpoints of a missing group answers 200; the Go SDK's url:\"\" means not given", async () => {
    const t = await freshTenant();
    expect((await api(`/v2/topics/missing/endpoints`, { method: "DELETE", token: t.token, ...json({ endpoints: [{ url: dest("x") }] }) })).status).toBe(200);
    expect((await api(`/v2/topics/missing`, { token: t.token })).status).toBe(404);

    const endpoints = [{ url: dest("g/a"), name: "a" }, { url: dest("g/b"), name: "b" }, { url: dest("g/c") }];
    await api(`/v2/topics/grp/endpoints`, { method: "POST", token: t.token, ...json({ endpoints }) });
    const names = async () => (await (await api(`/v2/topics/grp`, { token: t.token })).json<{ endpoints: { url: string }[] }>()).endpoints.map((e) => e.url).sort();
    // Go RemoveEndpoints by name sends {"url": "", "name": "a"}: only endpoint a goes.
    expect((await api(`/v2/topics/grp/endpoints`, { method: "DELETE", token: t.token, ...json({ endpoints: [{ url: "", name: "a" }] }) })).status).toBe(200);
    expect(await names()).toEqual([dest("g/b"), dest("g/c")]);
    // Neither given is a 400, never "every endpoint without a name".
    await expect400(await api(`/v2/topics/grp/endpoints`, { method: "DELETE", token: t.token, ...json({ endpoints: [{ name: "" }] }) }), /url or a name/);
    // Given both, both must match: url b with name z removes nothing.
    await api(`/v2/topics/grp/endpoints`, { method: "DELETE", token: t.token, ...json({ endpoints: [{ url: dest("g/b"), name: "z" }] }) });
    expect(await names()).toEqual([dest("g/b"), dest("g/c")]);
  });

  it("deleting a queue or a schedule that does not exist answers 200", async () => {
    const t = await freshTenant();
    expect((await api(`/v2/queues/nope`, { method: "DELETE", token: t.token })).status).toBe(200);
    expect((await api(`/v2/schedules/scd_nope`, { method: "DELETE", token: t.token })).status).toBe(200);
  });
});

describe("flow-control period default", () => {
  it("a message, its DLQ entry and its logs report period 1 when the publisher set none", async () => {
    const t = await freshTenant();
    const key = uniqueKey("fc");
    const id = await publishOk(dest(`${key}/ok`), {
      token: t.token,
      headers: { "upstash-delay": "1h", "upstash-flow-control-key": key, "upstash-flow-control-value": "parallelism=2" },
    });
    const m = await (await api(`/v2/messages/${id}`, { token: t.token })).json<Record<string, unknown>>();
    expect(m).toMatchObject({ flowControlKey: key, parallelism: 2, period: 1 });
    expect("rate" in m).toBe(false);
    const logs = await (await api(`/v2/logs?messageId=${id}`, { token: t.token })).json<{ logs: Record<string, unknown>[] }>();
    expect(logs.logs[0]).toMatchObject({ flowControlKey: key, parallelism: 2, period: 1 });

    const failed = await publishOk(dest(`${key}/status/500`), {
      token: t.token,
      headers: { "upstash-retries": "0", "upstash-flow-control-key": key, "upstash-flow-control-value": "rate=5, period=1m" },
    });
    const entry = await waitFor("the DLQ entry", async () => {
      const body = await (await api(`/v2/dlq?messageId=${failed}`, { token: t.token })).json<Dlq>();
      return body.messages[0];
    });
    expect(entry).toMatchObject({ flowControlKey: key, rate: 5, period: 60 });
  });

  it("a schedule reports period 1 when the publisher set none", async () => {
    const t = await freshTenant();
    const res = await api(`/v2/schedules/${dest("fc/ok")}`, {
      method: "POST",
      token: t.token,
      headers: { "upstash-cron": "1 1 1 1 1", "upstash-flow-control-key": "fk", "upstash-flow-control-value": "parallelism=2" },
    });
    const { scheduleId } = await res.json<{ scheduleId: string }>();
    const s = await (await api(`/v2/schedules/${scheduleId}`, { token: t.token })).json<Record<string, unknown>>();
    expect(s).toMatchObject({ flowControlKey: "fk", parallelism: 2, period: 1 });
    expect("rate" in s).toBe(false);
  });
});

describe("resource names in the path", () => {
  it("answers the Go SDK's /v2/Schedules spelling like /v2/schedules", async () => {
    const t = await freshTenant();
    const res = await api(`/v2/Schedules/${dest("go/ok")}`, { method: "POST", token: t.token, headers: { "upstash-cron": "1 1 1 1 1" } });
    expect(res.status).toBe(200);
    const { scheduleId } = await res.json<{ scheduleId: string }>();
    const s = await (await api(`/v2/Schedules/${scheduleId}`, { token: t.token })).json<Record<string, unknown>>();
    expect(s).toMatchObject({ scheduleId, destination: dest("go/ok"), cron: "1 1 1 1 1" });
  });

  it("routes a publish or enqueue on a stand-in for its destination, which it reads whole from the raw URL", async () => {
    const at = (path: string) => routingPath(new Request(`http://boomerang.local${path}`));
    expect(at("/v2/publish/https://a.example/b/c/d?e=f")).toBe("/v2/publish/-");
    expect(at("/v2/Enqueue/q1/https://a.example/b")).toBe("/v2/enqueue/-");
    expect(at("/v2/publish")).toBe("/v2/publish");
    expect(at("/v2/publish/")).toBe("/v2/publish/");
    expect(at("/v2/publishx/y")).toBe("/v2/publishx/y");
    expect(at("/v2/Schedules/abc")).toBe("/v2/schedules/abc");

    const t = await freshTenant();
    const deep = dest(`route/${uniqueKey()}/a/b/c`);
    const published = await api(`/v2/Publish/${deep}?x=1`, { method: "POST", token: t.token, body: "deep" });
    expect(published.status).toBe(200);
    const { messageId } = await published.json<{ messageId: string }>();
    const m = await (await api(`/v2/messages/${messageId}`, { token: t.token })).json<{ url: string }>();
    expect(m.url).toBe(`${deep}?x=1`);
    const enqueued = await api(`/v2/enqueue/q-route/${deep}`, { method: "POST", token: t.token, body: "deep" });
    expect(enqueued.status).toBe(200);
    const q = await (await api(`/v2/messages/${(await enqueued.json<{ messageId: string }>()).messageId}`, { token: t.token })).json<{ url: string; queueName: string }>();
    expect(q).toMatchObject({ url: deep, queueName: "q-route" });
    expect((await api(`/v2/publish/${deep}`, { method: "GET", token: t.token })).status).toBe(405);
  });
});

describe("resources with no bulk delete", () => {
  it("DELETE on the schedule, queue, URL-group and flow-control collections is a 405 that changes nothing", async () => {
    const t = await freshTenant();
    const sched = await api(`/v2/schedules/${dest("nb/ok")}`, { method: "POST", token: t.token, headers: { "upstash-cron": "1 1 1 1 1" } });
    const { scheduleId } = await sched.json<{ scheduleId: string }>();
    await api(`/v2/queues`, { method: "POST", token: t.token, ...json({ queueName: "q1" }) });
    await api(`/v2/topics/g1/endpoints`, { method: "POST", token: t.token, ...json({ endpoints: [{ url: dest("nb/1") }] }) });
    for (const path of ["/v2/schedules", "/v2/queues", "/v2/topics", "/v2/flowControl"]) {
      for (const body of [undefined, JSON.stringify({ ids: [scheduleId, "q1", "g1"] })]) {
        const res = await api(path, { method: "DELETE", token: t.token, body, headers: { "content-type": "application/json" } });
        expect(res.status, `DELETE ${path}`).toBe(405);
        expect((await res.json<{ error: string }>()).error).toMatch(/not allowed/);
      }
    }
    expect((await api(`/v2/schedules/${scheduleId}`, { token: t.token })).status).toBe(200);
    expect((await api(`/v2/queues/q1`, { token: t.token })).status).toBe(200);
    expect((await api(`/v2/topics/g1`, { token: t.token })).status).toBe(200);
  });
});

describe("management bodies are read with a cap", () => {
  it("a URL-group body over 1 MiB and a queue body over 64 KiB are 413s that change nothing", async () => {
    const t = await freshTenant();
    const huge = JSON.stringify({ endpoints: [{ url: dest("cap/1"), name: "x".repeat(1 << 20) }] });
    expect((await api(`/v2/topics/capped/endpoints`, { method: "POST", token: t.token, ...json(huge) })).status).toBe(413);
    expect((await api(`/v2/topics/capped`, { token: t.token })).status).toBe(404);
    const big = JSON.stringify({ queueName: "capped", parallelism: 1, note: "y".repeat(70_000) });
    expect((await api(`/v2/queues`, { method: "POST", token: t.token, ...json(big) })).status).toBe(413);
    expect((await api(`/v2/queues/capped`, { token: t.token })).status).toBe(404);
    // Still a clear 400 for a body that is not JSON.
    const bad = await api(`/v2/queues`, { method: "POST", token: t.token, ...json("{queueName:") });
    expect(bad.status).toBe(400);
    expect((await bad.json<{ error: string }>()).error).toMatch(/queueName/);
  });

  it("DLQ ids carry twelve random digits after the millisecond", async () => {
    const t = await freshTenant();
    await failInto(t.token, 1, uniqueKey("dlqid"));
    const [id] = await dlqIds(t);
    expect(id).toMatch(/^\d{13}-\d{1,12}$/);
  });
});
