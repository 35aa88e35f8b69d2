/** Tests for the queue feed (src/delivery/feed.ts), with a recording send standing in for the deliveries queue. */
import { describe, expect, it } from "vitest";
import { QueueFeed } from "../../src/delivery/feed";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A send that records each call (ids, start and end times) and takes `ms`; `failOn` makes calls with an id throw. */
function recorder(ms = 2) {
  const calls: { ids: string[]; start: number; end: number }[] = [];
  let fails = new Set<string>();
  const send = async (ids: string[]) => {
    const start = Date.now();
    await sleep(ms);
    const call = { ids, start, end: Date.now() };
    calls.push(call);
    if (ids.some((id) => fails.has(id))) throw new Error(`send of ${ids.join(",")} failed`);
  };
  return { calls, send, failOn: (ids: string[]) => (fails = new Set(ids)) };
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe("QueueFeed", () => {
  it("sends a lone hand-off at once", async () => {
    const r = recorder(0);
    const feed = new QueueFeed(1_000, 10);
    const t0 = Date.now();
    await feed.push(["a"], r.send);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(r.calls.map((c) => c.ids)).toEqual([["a"]]);
  });

  it("does not space small sends: at a low rate every hand-off goes at once, however close", async () => {
    const r = recorder(0);
    const feed = new QueueFeed(1_000, 10);
    const t0 = Date.now();
    for (const id of ["a", "b", "c", "d"]) await feed.push([id, `${id}2`], r.send);
    // A gap of a second between sends would have made this take 3 s.
    expect(Date.now() - t0).toBeLessThan(500);
    expect(r.calls.map((c) => c.ids)).toEqual([["a", "a2"], ["b", "b2"], ["c", "c2"], ["d", "d2"]]);
  });

  it("after a send of `loadIds` or more, waits for the gap and carries everything waiting by then in one send", async () => {
    const r = recorder(1);
    const feed = new QueueFeed(150, 10);
    await feed.push(ids("load", 10), r.send);
    // Three hand-offs well within the gap: they wait, and one send carries them all.
    await Promise.all([feed.push(["a"], r.send), sleep(20).then(() => feed.push(["b"], r.send)), sleep(40).then(() => feed.push(["c", "d"], r.send))]);
    expect(r.calls.map((c) => c.ids)).toEqual([ids("load", 10), ["a", "b", "c", "d"]]);
    // The second send started no sooner than the gap after the first ended (timers may fire a millisecond early).
    expect(r.calls[1].start - r.calls[0].end).toBeGreaterThanOrEqual(145);
    expect(feed.sends).toBe(2);
  });

  it("once the gap has passed, a hand-off after a large send goes at once", async () => {
    const r = recorder(0);
    const feed = new QueueFeed(50, 10);
    await feed.push(ids("load", 12), r.send);
    await sleep(120);
    const t0 = Date.now();
    await feed.push(["late"], r.send);
    expect(Date.now() - t0).toBeLessThan(40);
    expect(r.calls.map((c) => c.ids)).toEqual([ids("load", 12), ["late"]]);
  });

  it("hand-offs that arrive while a send runs go in the next send, each id exactly once", async () => {
    const r = recorder(30);
    const feed = new QueueFeed(0, 10);
    const first = feed.push(["a"], r.send);
    await sleep(5);
    // The first send is under way: these wait for it, then go together.
    await Promise.all([first, ...["b", "c", "d", "e"].map((id) => feed.push([id], r.send))]);
    expect(r.calls.map((c) => c.ids)).toEqual([["a"], ["b", "c", "d", "e"]]);
  });

  it("many concurrent hand-offs under load: every id sent exactly once, in few sends, each resolved after its own send", async () => {
    const r = recorder(3);
    const feed = new QueueFeed(20, 10);
    const all: string[] = [];
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        await sleep((i % 20) * 3);
        const mine = ids(`h${i}-`, 12);
        all.push(...mine);
        await feed.push(mine, r.send);
        // Resolved only once a finished send carried these ids.
        const carried = r.calls.filter((c) => c.ids.includes(mine[0]));
        expect(carried).toHaveLength(1);
        expect(mine.every((id) => carried[0].ids.includes(id))).toBe(true);
      }),
    );
    const sent = r.calls.flatMap((c) => c.ids);
    expect(sent.sort()).toEqual([...all].sort());
    expect(r.calls.length).toBeLessThan(20);
  });

  it("a send that does not end holds the next hand-offs back only for `stuckMs`; its own ids go when it ends", async () => {
    const sent: string[][] = [];
    let release!: () => void;
    const hang = new Promise<void>((r) => (release = r));
    const send = async (ids: string[]) => {
      if (ids.includes("stuck")) await hang;
      sent.push(ids);
    };
    const feed = new QueueFeed(0, 10, 100);
    let stuckDone = false;
    const stuck = feed.push(["stuck"], send).then(() => (stuckDone = true));
    await sleep(5);
    const t0 = Date.now();
    await Promise.all([feed.push(["b"], send), feed.push(["c"], send)]);
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(90);
    expect(waited).toBeLessThan(1_000);
    expect(sent).toEqual([["b", "c"]]);
    expect(stuckDone).toBe(false);
    // Later hand-offs do not wait for it either.
    await feed.push(["d"], send);
    release();
    await stuck;
    expect(sent).toEqual([["b", "c"], ["d"], ["stuck"]]);
  });

  it("a failed send rejects every hand-off it carried, with its error; the next send goes on", async () => {
    const r = recorder(20);
    const feed = new QueueFeed(0, 10);
    r.failOn(["b"]);
    const first = feed.push(["a"], r.send);
    await sleep(5);
    const results = await Promise.allSettled([first, feed.push(["b"], r.send), feed.push(["c"], r.send)]);
    expect(results[0].status).toBe("fulfilled");
    expect(results[1]).toMatchObject({ status: "rejected", reason: { message: "send of b,c failed" } });
    expect(results[2]).toMatchObject({ status: "rejected", reason: { message: "send of b,c failed" } });
    r.failOn([]);
    await feed.push(["d"], r.send);
    expect(r.calls.map((c) => c.ids)).toEqual([["a"], ["b", "c"], ["d"]]);
  });
});
