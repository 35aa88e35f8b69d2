/**
 * The logs API lists a tenant's entries in time order across messages, although each message keeps its log in its
 * own row: entries long after their message's creation are found through log marks (src/db/logs.ts). Messages
 * with entries at random times (some within the 30 s log window of the newest anchor, some far beyond it) are
 * written with the statements the server uses, then every page of GET /v2/logs is compared with the order a plain
 * sort of all entries gives, in both directions and with filters.
 */
import { describe, expect, it } from "vitest";
import { newMessage } from "../../src/core/message";
import type { MessageSpec } from "../../src/core/spec";
import { appendLog, LOG_WINDOW_MS } from "../../src/db/logs";
import { insertMessage } from "../../src/db/messages";
import { api, dbOf, freshTenant, plainSpec } from "./helpers";

const spec: MessageSpec = { ...plainSpec, maxRetries: 3 };

interface Entry {
  time: number;
  messageId: string;
  index: number;
  state: string;
}

/** A small deterministic generator, so a failure can be replayed. */
function rng(seed: number) {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const STATES = ["ACTIVE", "ERROR", "RETRY", "ACTIVE", "DELIVERED"];

async function seed(t: { tenantId: string; shard: number }, n: number, random: () => number): Promise<Entry[]> {
  const db = dbOf(t);
  const base = Date.now() - 3_600_000;
  const all: Entry[] = [];
  for (let k = 0; k < n; k++) {
    // Creation times collide on purpose now and then (same millisecond, different ids).
    const created = base + Math.floor(random() * 40) * 15_000;
    const m = newMessage(spec, { tenantId: t.tenantId, url: `https://example.com/${k % 3}`, body: new Uint8Array(), callerIp: null, shard: t.shard }, created);
    // Finished at once, so that no sweep of another test file re-drives it meanwhile.
    await db.batch([insertMessage(db, m), db.prepare("UPDATE messages SET finished_at = ?2, state = 'DELIVERED' WHERE id = ?1").bind(m.id, created)]);
    all.push({ time: created, messageId: m.id, index: 0, state: "CREATED" });
    let at = created;
    const count = Math.floor(random() * 5);
    for (let i = 0; i < count; i++) {
      const gap = [0, 4_000, LOG_WINDOW_MS + 1, 600_000][Math.floor(random() * 4)];
      at += gap;
      const entry = JSON.stringify({ s: STATES[i] });
      await db.prepare(`UPDATE messages SET ${appendLog("?2", ["?3"])} WHERE id = ?1`).bind(m.id, at, entry).run();
      all.push({ time: at, messageId: m.id, index: i + 1, state: STATES[i] });
    }
  }
  return all;
}

const compare = (a: Entry, b: Entry) => a.time - b.time || (a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0) || a.index - b.index;

/** Every page of a listing, followed by its cursors. */
async function pages(token: string, query: string, count: number): Promise<{ entries: Omit<Entry, "index">[]; calls: number }> {
  const entries: Omit<Entry, "index">[] = [];
  let cursor: string | undefined;
  let calls = 0;
  do {
    const res = await api(`/v2/logs?count=${count}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { token });
    expect(res.status).toBe(200);
    const body = await res.json<{ cursor?: string; logs: { time: number; messageId: string; state: string }[] }>();
    entries.push(...body.logs.map((l) => ({ time: l.time, messageId: l.messageId, state: l.state })));
    cursor = body.cursor;
    calls++;
    expect(calls).toBeLessThan(500);
  } while (cursor);
  return { entries, calls };
}

const strip = (e: Entry) => ({ time: e.time, messageId: e.messageId, state: e.state });

describe("the order of log entries across messages", () => {
  it("pages newest first and oldest first give exactly the sorted entries, late ones included", async () => {
    const t = await freshTenant();
    const all = await seed(t, 60, rng(11));
    const marks = await dbOf(t).prepare("SELECT count(*) AS n FROM log_marks WHERE tenant_id = ?1").bind(t.tenantId).first<number>("n");
    expect(Number(marks)).toBeGreaterThan(5);
    const desc = [...all].sort((a, b) => compare(b, a)).map(strip);
    const asc = [...all].sort(compare).map(strip);
    expect((await pages(t.token, "", 7)).entries).toEqual(desc);
    expect((await pages(t.token, "&order=earliestFirst", 7)).entries).toEqual(asc);
    expect((await pages(t.token, "", 1000)).entries).toEqual(desc);
  });

  it("filters by time range, state and URL keep the same order", async () => {
    const t = await freshTenant();
    const all = await seed(t, 40, rng(23));
    const times = all.map((e) => e.time).sort((a, b) => a - b);
    const from = times[Math.floor(times.length / 4)];
    const to = times[Math.floor((3 * times.length) / 4)];
    const inRange = all.filter((e) => e.time >= from && e.time <= to).sort((a, b) => compare(b, a));
    expect((await pages(t.token, `&fromDate=${from}&toDate=${to}`, 5)).entries).toEqual(inRange.map(strip));
    const active = all.filter((e) => e.state === "ACTIVE").sort((a, b) => compare(b, a));
    expect((await pages(t.token, "&state=ACTIVE", 4)).entries).toEqual(active.map(strip));
    const byUrl = await dbOf(t).prepare("SELECT id FROM messages WHERE tenant_id = ?1 AND url = ?2").bind(t.tenantId, "https://example.com/1").all<{ id: string }>();
    const ids = new Set(byUrl.results.map((r) => r.id));
    const url = all.filter((e) => ids.has(e.messageId)).sort(compare);
    expect((await pages(t.token, `&url=${encodeURIComponent("https://example.com/1")}&order=asc`, 6)).entries).toEqual(url.map(strip));
  });

  it("a cursor that this API did not make is refused with a 400", async () => {
    const t = await freshTenant();
    for (const bad of ["12", "abc", "1.2.3", "1.2.notanid"]) {
      const res = await api(`/v2/logs?cursor=${bad}`, { token: t.token });
      expect(res.status).toBe(400);
      expect((await res.json<{ error: string }>()).error).toContain("cursor");
    }
  });
});
