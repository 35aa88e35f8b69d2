/** Tests for the group-commit coordinator, with a recording commit function standing in for D1 + hand-off. */
import { describe, expect, it } from "vitest";
import { GroupCommit, type GroupLimits } from "../../src/delivery/group-commit";

interface Item {
  id: string;
  bytes: number;
}

function msg(id: string, bytes = 10): Item {
  return { id, bytes };
}

const defaults: GroupLimits = { leaders: 2, units: 64, bytes: 1 << 20, stuckMs: 5_000 };

/** A coordinator over `commit`; `join(id)` adds one item of 10 bytes (or `bytes`). */
function coordinator(commit: (items: Item[]) => Promise<void>, limits: Partial<GroupLimits> = {}) {
  const g = new GroupCommit<Item>(commit, (i) => ({ units: 1, bytes: i.bytes }), { ...defaults, ...limits });
  return (id: string, bytes = 10) => g.join(msg(id, bytes));
}

/** A commit that records each group and finishes after `ms` (or when `hold` is released). */
function recorder(ms = 5) {
  const groups: string[][] = [];
  const done = new Set<string>();
  let fails = new Set<string>();
  const commit = async (items: Item[]) => {
    const ids = items.map((m) => m.id);
    groups.push(ids);
    await new Promise((r) => setTimeout(r, ms));
    if (ids.some((id) => fails.has(id))) throw new Error(`commit of ${ids.join(",")} failed`);
    for (const id of ids) done.add(id);
  };
  return { groups, done, commit, failOn: (ids: string[]) => (fails = new Set(ids)) };
}

describe("GroupCommit", () => {
  it("commits a lone publish at once, in a group of its own", async () => {
    const r = recorder(0);
    const join = coordinator(r.commit);
    const t0 = Date.now();
    await join("a");
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.groups).toEqual([["a"]]);
  });

  it("shares commits between concurrent publishes; each is committed exactly once before it resolves", async () => {
    const r = recorder(10);
    const join = coordinator(r.commit);
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    await Promise.all(
      ids.map(async (id) => {
        await join(id);
        // Resolved only once its own group has been committed.
        expect(r.done.has(id)).toBe(true);
      }),
    );
    const committed = r.groups.flat();
    expect(committed.sort()).toEqual([...ids].sort());
    expect(new Set(committed).size).toBe(ids.length);
    // Two leaders start at once; the other 38 publishes ride on a few more commits.
    expect(r.groups.length).toBeLessThanOrEqual(4);
  });

  it("keeps groups within the message and byte limits; an oversized publish commits alone", async () => {
    const r = recorder(5);
    const join = coordinator(r.commit, { units: 5, bytes: 100 });
    const jobs = Array.from({ length: 20 }, (_, i) => join(`s${i}`));
    jobs.push(join("big", 500));
    await Promise.all(jobs);
    for (const g of r.groups) {
      expect(g.length).toBeLessThanOrEqual(5);
      if (g.includes("big")) expect(g).toEqual(["big"]);
    }
    expect(r.groups.flat().length).toBe(21);
  });

  it("rejects every member of a failed group with the commit's error, and later publishes still commit", async () => {
    const r = recorder(10);
    const join = coordinator(r.commit, { leaders: 1 });
    r.failOn(["f1"]);
    const first = join("f1"); // leads alone
    const waiting = ["w1", "w2", "w3"].map((id) => join(id)); // one group, next
    const results = await Promise.allSettled([first, ...waiting]);
    expect(results[0].status).toBe("rejected");
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/commit of f1 failed/);
    expect(results.slice(1).map((x) => x.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    expect(r.groups).toEqual([["f1"], ["w1", "w2", "w3"]]);

    r.failOn(["x2"]);
    const blocker = join("x1");
    const grouped = ["x2", "x3"].map((id) => join(id));
    const after = await Promise.allSettled([blocker, ...grouped]);
    expect(after.map((x) => x.status)).toEqual(["fulfilled", "rejected", "rejected"]);
    expect(r.done.has("x3")).toBe(false);
    await join("y");
    expect(r.done.has("y")).toBe(true);
  });

  it("runs the follow-up work after passing the lead: the next commit overlaps it, members wait for it", async () => {
    const log: string[] = [];
    const g = new GroupCommit<Item>(
      async (items) => {
        log.push(`commit ${items.map((i) => i.id).join(",")}`);
        await new Promise((r) => setTimeout(r, 5));
      },
      () => ({ units: 1, bytes: 1 }),
      { ...defaults, leaders: 1 },
      async (items) => {
        log.push(`after ${items.map((i) => i.id).join(",")} begins`);
        await new Promise((r) => setTimeout(r, 30));
        log.push(`after ${items.map((i) => i.id).join(",")} ends`);
      },
    );
    const first = g.join(msg("a")).then(() => log.push("a answered"));
    const rest = ["b", "c"].map((id) => g.join(msg(id)).then(() => log.push(`${id} answered`)));
    await Promise.all([first, ...rest]);
    expect(log.indexOf("commit b,c")).toBeLessThan(log.indexOf("after a ends"));
    expect(log.indexOf("a answered")).toBeGreaterThan(log.indexOf("after a ends"));
    expect(log.indexOf("b answered")).toBeGreaterThan(log.indexOf("after b,c ends"));
    expect(log.indexOf("c answered")).toBeGreaterThan(log.indexOf("after b,c ends"));
  });

  it("does not stall when a leader never comes back: members in line lead themselves", async () => {
    const done = new Set<string>();
    const commit = async (items: Item[]) => {
      if (items.some((m) => m.id === "hang")) return new Promise<void>(() => {}); // a leader whose request died
      for (const m of items) done.add(m.id);
    };
    const join = coordinator(commit, { leaders: 1, stuckMs: 200 });
    void join("hang");
    const t0 = Date.now();
    await Promise.all(["p", "q"].map((id) => join(id)));
    expect(done).toEqual(new Set(["p", "q"]));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    // The slot of the vanished leader was taken over, so the next publish commits without waiting.
    const t1 = Date.now();
    await join("r");
    expect(done.has("r")).toBe(true);
    expect(Date.now() - t1).toBeLessThan(150);
  });
  it("under load, starts a commit no sooner than the gap after the last one, carrying everyone who joined meanwhile", async () => {
    const starts: { ids: string[]; at: number }[] = [];
    const commit = async (items: Item[]) => {
      starts.push({ ids: items.map((i) => i.id), at: Date.now() });
      await new Promise((r) => setTimeout(r, 2));
    };
    const join = coordinator(commit, { leaders: 1, spacing: { gapMs: 80, loadUnits: 2 } });
    // a leads alone at once (nothing before it); b and c, in line meanwhile, go together right after it.
    await Promise.all(["a", "b", "c"].map((id) => join(id)));
    expect(starts.map((s) => s.ids)).toEqual([["a"], ["b", "c"]]);
    // The last commit carried 2: the next waits for the gap, and whoever joins meanwhile rides with it.
    const later: Promise<void>[] = [];
    for (const id of ["d", "e", "f"]) {
      later.push(join(id));
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(later);
    expect(starts.map((s) => s.ids)).toEqual([["a"], ["b", "c"], ["d", "e", "f"]]);
    expect(starts[2].at - starts[1].at).toBeGreaterThanOrEqual(75);
  });

  it("with spacing, a lone writer never waits: a commit of one is not load", async () => {
    const r = recorder(1);
    const join = coordinator(r.commit, { leaders: 1, spacing: { gapMs: 1_000, loadUnits: 2 } });
    const t0 = Date.now();
    for (const id of ["x", "y", "z"]) await join(id);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(r.groups).toEqual([["x"], ["y"], ["z"]]);
  });
});
