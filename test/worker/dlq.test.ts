import { describe, expect, it } from "vitest";
import { type Dlq, api, dest, failInto, freshTenant, hits, publishOk, uniqueKey, waitFor, waitForHits } from "./helpers";

describe("/v2/dlq", () => {
  it("lists with a cursor that is absent on the last page, filters, gets, deletes", async () => {
    const t = await freshTenant();
    const label = uniqueKey("dl");
    const ids = await failInto(t.token, 3, label);
    const p1 = await (await api(`/v2/dlq?count=2`, { token: t.token })).json<Dlq>();
    expect(p1.messages.length).toBe(2);
    expect(typeof p1.cursor).toBe("string");
    const p2 = await (await api(`/v2/dlq?count=2&cursor=${p1.cursor}`, { token: t.token })).json<Dlq>();
    expect(p2.messages.length).toBe(1);
    expect("cursor" in p2).toBe(false);
    expect([...p1.messages, ...p2.messages].map((m) => m.messageId).sort()).toEqual([...ids].sort());
    // newest first
    expect(p1.messages[0].messageId).toBe(ids[2]);

    // The Workflow SDK's filters narrow: no entry here belongs to a run.
    for (const q of ["workflowRunId=wfr_none", "failureFunctionState=CALLBACK_FAIL", "workflowCreatedAt=1"]) {
      expect((await (await api(`/v2/dlq?${q}`, { token: t.token })).json<Dlq>()).messages, q).toEqual([]);
      expect(await (await api(`/v2/dlq?${q}`, { method: "DELETE", token: t.token })).json(), q).toEqual({ deleted: 0 });
    }
    const one = await (await api(`/v2/dlq?messageId=${ids[0]}`, { token: t.token })).json<Dlq>();
    expect(one.messages.map((m) => m.messageId)).toEqual([ids[0]]);
    const dlqId = one.messages[0].dlqId as string;
    const got = await api(`/v2/dlq/${dlqId}`, { token: t.token });
    expect(await got.json()).toMatchObject({ dlqId, messageId: ids[0], responseStatus: 500, label });
    expect((await api(`/v2/dlq/${dlqId}`, { method: "DELETE", token: t.token })).status).toBe(200);
    expect((await api(`/v2/dlq/${dlqId}`, { method: "DELETE", token: t.token })).status).toBe(404);
    expect((await api(`/v2/dlq/${dlqId}`, { token: t.token })).status).toBe(404);
  });

  it("refuses unknown filters and host/path with 400", async () => {
    for (const q of ["labeel=x", "host=example.com", "path=/x", "label=", "responseStatus=abc", "cursor=zz", "failureFunctionState=DONE", "workflowCreatedAt=yesterday"]) {
      const res = await api(`/v2/dlq?${q}`);
      expect(res.status, q).toBe(400);
      expect((await res.json<{ error: string }>()).error.length).toBeGreaterThan(5);
    }
    expect((await api(`/v2/dlq?labeel=x`, { method: "DELETE" })).status).toBe(400);
    expect((await api(`/v2/dlq/retry?labeel=x`, { method: "POST" })).status).toBe(400);
  });

  it("retries one entry as a new message with override headers, removing the entry", async () => {
    const t = await freshTenant();
    const key = uniqueKey("rt");
    const id = await publishOk(dest(`${key}/flaky/1`), {
      token: t.token,
      body: "again",
      headers: { "upstash-retries": "0", "upstash-forward-x-k": "v" },
    });
    const entry = await waitFor("dlq", async () => (await (await api(`/v2/dlq`, { token: t.token })).json<Dlq>()).messages[0]);
    const res = await api(`/v2/dlq/retry/${entry.dlqId}`, { method: "POST", token: t.token, headers: { "upstash-retries": "2" } });
    expect(res.status).toBe(201);
    const { messageId } = await res.json<{ messageId: string }>();
    expect(messageId).not.toBe(id);
    const got = await waitForHits(key, 2);
    expect(got[1].headers["upstash-message-id"]).toBe(messageId);
    expect(atob(got[1].body)).toBe("again");
    expect(got[1].headers["x-k"]).toBe("v");
    expect((await api(`/v2/dlq/${entry.dlqId}`, { token: t.token })).status).toBe(404);
    expect((await api(`/v2/dlq/retry/${entry.dlqId}`, { method: "POST", token: t.token })).status).toBe(404);
  });

  it("bulk retry and bulk delete by filter and by ids", async () => {
    const t = await freshTenant();
    const label = uniqueKey("bk");
    await failInto(t.token, 3, label);
    const list = await (await api(`/v2/dlq`, { token: t.token })).json<Dlq>();
    const first = list.messages[0].dlqId as string;
    const del = await api(`/v2/dlq?dlqIds=${first}`, { method: "DELETE", token: t.token });
    expect(await del.json()).toEqual({ deleted: 1 });
    const retry = await api(`/v2/dlq/retry?label=${label}`, { method: "POST", token: t.token, headers: { "upstash-retries": "0" } });
    expect(retry.status).toBe(201);
    const body = await retry.json<{ responses: { messageId: string }[]; cursor?: string }>();
    expect(body.responses.length).toBe(2);
    expect("cursor" in body).toBe(false);
    await waitFor("retried messages to fail again", async () => {
      const b = await (await api(`/v2/dlq?label=${label}`, { token: t.token })).json<Dlq>();
      return b.messages.length === 2 ? true : undefined;
    });
    const all = await api(`/v2/dlq`, { method: "DELETE", token: t.token });
    expect(await all.json()).toEqual({ deleted: 2 });
    expect((await (await api(`/v2/dlq`, { token: t.token })).json<Dlq>()).messages).toEqual([]);
    expect((await hits(label)).length).toBe(5);
  });
});
