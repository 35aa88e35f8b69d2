// Memory caps: every request body is read with a byte cap (also without Content-Length), and list pages (logs, DLQ)
// carry a bounded number of body bytes: a page stops early at its budget, and a large R2 body is cut in a page.
import { describe, expect, it } from "vitest";
import { api, dest, freshTenant, publish, uniqueKey, waitFor } from "./helpers";

const MiB = 1 << 20;

function bytes(n: number, fill: number): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

/** A request body sent as a stream, without Content-Length (chunked). */
function streamOf(total: number, chunk = MiB): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(chunk, total - sent);
      sent += n;
      controller.enqueue(bytes(n, 0x61));
    },
  });
}

type LogPage = { cursor?: string; logs: { messageId: string; state: string; body?: string; bodyTruncated?: boolean; bodySize?: number }[] };

describe("request bodies are read with a cap", () => {
  it("a publish streamed without Content-Length past MAX_MESSAGE_SIZE is a 413 and stores nothing", async () => {
    const t = await freshTenant();
    const key = uniqueKey("chunked");
    const res = await publish(dest(`${key}/ok`), { token: t.token, body: streamOf(10 * MiB + 1), duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
    expect((await res.json<{ error: string }>()).error).toContain("MAX_MESSAGE_SIZE");
    const logs = await (await api(`/v2/logs`, { token: t.token })).json<LogPage>();
    expect(logs.logs).toEqual([]);
  });

  it("a streamed body within the limit is accepted whole", async () => {
    const t = await freshTenant();
    const res = await publish(dest(`${uniqueKey("chunkok")}/ok`), {
      token: t.token,
      body: streamOf(2 * MiB + 5, 300_000),
      headers: { "upstash-delay": "1h" },
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(200);
    const { messageId } = await res.json<{ messageId: string }>();
    const m = await (await api(`/v2/messages/${messageId}`, { token: t.token })).json<{ body: string }>();
    expect(m.body.length).toBe(2 * MiB + 5);
  });

  it("a management or bulk body streamed past its cap is a 413", async () => {
    const t = await freshTenant();
    for (const [path, method] of [
      ["/v2/queues", "POST"],
      ["/v2/messages", "DELETE"],
      ["/v2/batch", "POST"],
    ] as const) {
      const total = path === "/v2/batch" ? 12 * MiB : 2 * MiB;
      const res = await api(path, { method, token: t.token, body: streamOf(total), duplex: "half" } as RequestInit);
      expect(res.status, path).toBe(413);
    }
  });
});

describe("list pages carry a bounded number of body bytes", () => {
  it("a logs page stops at its byte budget and goes on with a cursor; R2 bodies over 1 MiB are cut there", async () => {
    const t = await freshTenant();
    const key = uniqueKey("pages");
    const label = uniqueKey("lbl").replace(/[^a-zA-Z0-9_-]/g, "");
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await publish(dest(`${key}/ok`), {
        token: t.token,
        body: bytes(i === 0 ? MiB + MiB / 2 : 100_000, 0x62 + i),
        headers: { "upstash-delay": "1h", "upstash-label": label },
      });
      ids.push((await res.json<{ messageId: string }>()).messageId);
    }
    // Each body lives in R2 and counts as 1 MiB against the page's 8 MiB: eight entries per page.
    const first = await (await api(`/v2/logs?label=${label}&count=100`, { token: t.token })).json<LogPage>();
    expect(first.logs.length).toBe(8);
    expect(first.cursor).toBeTruthy();
    const second = await (await api(`/v2/logs?label=${label}&count=100&cursor=${first.cursor}`, { token: t.token })).json<LogPage>();
    expect(second.logs.length).toBe(2);
    expect(second.cursor).toBeUndefined();
    const seen = [...first.logs, ...second.logs].map((l) => l.messageId);
    expect(new Set(seen)).toEqual(new Set(ids));

    // The 1.5 MiB body is cut at 1 MiB in the page, which says so; the message itself has it whole.
    const big = [...first.logs, ...second.logs].find((l) => l.messageId === ids[0])!;
    expect(big.bodyTruncated).toBe(true);
    expect(big.bodySize).toBe(MiB + MiB / 2);
    expect(atob(big.body!).length).toBe(MiB);
    const small = [...first.logs, ...second.logs].find((l) => l.messageId === ids[1])!;
    expect(small.bodyTruncated).toBeUndefined();
    expect(atob(small.body!).length).toBe(100_000);
    const whole = await (await api(`/v2/messages/${ids[0]}`, { token: t.token })).json<{ body: string }>();
    expect(whole.body.length).toBe(MiB + MiB / 2);
  });

  it("a DLQ page cuts a large R2 response body; the entry itself has it whole", async () => {
    const t = await freshTenant();
    const key = uniqueKey("dlqcut");
    const size = 2 * MiB;
    const res = await publish(dest(`${key}/big-fail/${size}`), { token: t.token, headers: { "upstash-retries": "0" } });
    const { messageId } = await res.json<{ messageId: string }>();
    type Dlq = { messages: { dlqId: string; responseBody?: string; responseBodyTruncated?: boolean; responseBodySize?: number }[] };
    const page = await waitFor("the DLQ entry", async () => {
      const p = await (await api(`/v2/dlq?messageId=${messageId}`, { token: t.token })).json<Dlq>();
      return p.messages.length ? p : undefined;
    });
    const entry = page.messages[0];
    expect(entry.responseBodyTruncated).toBe(true);
    expect(entry.responseBodySize).toBe(size);
    expect(entry.responseBody!.length).toBe(MiB);
    const one = await (await api(`/v2/dlq/${entry.dlqId}`, { token: t.token })).json<Dlq["messages"][number]>();
    expect(one.responseBodyTruncated).toBeUndefined();
    expect(one.responseBody!.length).toBe(size);
  });
});
