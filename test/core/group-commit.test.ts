/** Tests for the group-commit coordinator, with a recording commit function standing in for D1 + hand-off. */
import { afterEach, describe, expect, it } from "vitest";
import type { StoredMessage } from "../../src/core/types";
import { commitInGroup, groupLimits } from "../../src/delivery/group-commit";
import type { Env } from "../../src/env";

const env = {} as Env;
const defaults = { ...groupLimits };

afterEach(() => Object.assign(groupLimits, defaults));

function msg(id: string, bytes = 10): StoredMessage {
  return { id, body: new Uint8Array(bytes) } as unknown as StoredMessage;
}

/** A commit that records each group and finishes after `ms` (or when `hold` is released). */
function recorder(ms = 5) {
  const groups: string[][] = [];
  const done = new Set<string>();
  let fails = new Set<string>();
  const commit = async (_env: Env, messages: StoredMessage[]) => {
    const ids = messages.map((m) => m.id);
    groups.push(ids);
    await new Promise((r) => setTimeout(r, ms));
    if (ids.some((id) => fails.has(id))) throw new Error(`commit of ${ids.join(",")} failed`);
    for (const id of ids) done.add(id);
  };
  return { groups, done, commit, failOn: (ids: string[]) => (fails = new Set(ids)) };
}

describe("commitInGroup", () => {
  it("commits a lone publish at once, in a group of its own", async () => {
    const r = recorder(0);
    const t0 = Date.now();
    await commitInGroup(env, [msg("a")], [], r.commit);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.groups).toEqual([["a"]]);
  });

  it("shares commits between concurrent publishes; each is committed exactly once before it resolves", async () => {
    const r = recorder(10);
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    await Promise.all(
      ids.map(async (id) => {
        await commitInGroup(env, [msg(id)], [], r.commit);
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
    groupLimits.messages = 5;
    groupLimits.bytes = 100;
    const r = recorder(5);
    const jobs = Array.from({ length: 20 }, (_, i) => commitInGroup(env, [msg(`s${i}`, 10)], [], r.commit));
    jobs.push(commitInGroup(env, [msg("big", 500)], [], r.commit));
    await Promise.all(jobs);
    for (const g of r.groups) {
      expect(g.length).toBeLessThanOrEqual(5);
      if (g.includes("big")) expect(g).toEqual(["big"]);
    }
    expect(r.groups.flat().length).toBe(21);
  });

  it("rejects every member of a failed group with the commit's error, and later publishes still commit", async () => {
    groupLimits.leaders = 1;
    const r = recorder(10);
    r.failOn(["f1"]);
    const first = commitInGroup(env, [msg("f1")], [], r.commit); // leads alone
    const waiting = ["w1", "w2", "w3"].map((id) => commitInGroup(env, [msg(id)], [], r.commit)); // one group, next
    const results = await Promise.allSettled([first, ...waiting]);
    expect(results[0].status).toBe("rejected");
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/commit of f1 failed/);
    expect(results.slice(1).map((x) => x.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
    expect(r.groups).toEqual([["f1"], ["w1", "w2", "w3"]]);

    r.failOn(["x2"]);
    const blocker = commitInGroup(env, [msg("x1")], [], r.commit);
    const grouped = ["x2", "x3"].map((id) => commitInGroup(env, [msg(id)], [], r.commit));
    const after = await Promise.allSettled([blocker, ...grouped]);
    expect(after.map((x) => x.status)).toEqual(["fulfilled", "rejected", "rejected"]);
    expect(r.done.has("x3")).toBe(false);
    await commitInGroup(env, [msg("y")], [], r.commit);
    expect(r.done.has("y")).toBe(true);
  });

  it("does not stall when a leader never comes back: members in line lead themselves", async () => {
    groupLimits.leaders = 1;
    groupLimits.stuckMs = 200;
    const done = new Set<string>();
    const commit = async (_env: Env, messages: StoredMessage[]) => {
      if (messages.some((m) => m.id === "hang")) return new Promise<void>(() => {}); // a leader whose request died
      for (const m of messages) done.add(m.id);
    };
    void commitInGroup(env, [msg("hang")], [], commit);
    const t0 = Date.now();
    await Promise.all(["p", "q"].map((id) => commitInGroup(env, [msg(id)], [], commit)));
    expect(done).toEqual(new Set(["p", "q"]));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    // The slot of the vanished leader was taken over, so the next publish commits without waiting.
    const t1 = Date.now();
    await commitInGroup(env, [msg("r")], [], commit);
    expect(done.has("r")).toBe(true);
    expect(Date.now() - t1).toBeLessThan(150);
  });
});
