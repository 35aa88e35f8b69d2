/**
 * Upstash Workflow apps built with the official `@upstash/workflow` SDK, unchanged, run against `npm run dev`: the
 * app is served by the SDK's `serve()` behind a plain Node HTTP server on 127.0.0.1, triggered with the SDK's
 * `Client`, and every request it receives is checked with the SDK's Receiver (the dev signing keys).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Client as QStashClient, Receiver } from "@upstash/qstash";
import { Client as WorkflowClient, serve } from "@upstash/workflow";
import type { WorkflowContext } from "@upstash/workflow";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, startDestination } from "../support/destination";
import { USER1, uniqueKey, waitFor } from "./helpers";
import { type DevServer, freePort, showServerOnFailure, startServer } from "./server";
import path from "node:path";

let server: DevServer;
let dest: Destination;
let app: http.Server;
let appBase: string;
let wf: WorkflowClient;

showServerOnFailure(() => server);

/** What the workflows did, by run id: the test reads it. */
const seen = new Map<string, Record<string, unknown>>();
const note = (runId: string, patch: Record<string, unknown>) => seen.set(runId, { ...(seen.get(runId) ?? {}), ...patch });
/** How many times each step body actually ran (a step must run once, whatever the retries of other calls). */
const ran = new Map<string, number>();
const count = (key: string) => ran.set(key, (ran.get(key) ?? 0) + 1);

type Route = (context: WorkflowContext<{ key: string; n?: number }>) => Promise<unknown>;
const routes: Record<string, { fn: Route; failure?: boolean }> = {
  sequential: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      const a = await context.run("first", () => {
        count(`${key}:first`);
        return { value: 20 };
      });
      const b = await context.run("second", () => {
        count(`${key}:second`);
        return a.value + 22;
      });
      note(context.workflowRunId, { a, b, headers: context.headers.get("x-app-header") });
      return { total: b };
    },
  },
  sleepy: {
    fn: async (context) => {
      const start = await context.run("before", () => Date.now());
      await context.sleep("nap", 2);
      const until = Math.floor(Date.now() / 1000) + 2;
      await context.sleepUntil("until", until);
      const end = await context.run("after", () => Date.now());
      note(context.workflowRunId, { slept: end - start, until });
      return "rested";
    },
  },
  parallel: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      const [x, y, z] = await Promise.all([
        context.run("x", () => {
          count(`${key}:x`);
          return "X";
        }),
        context.run("y", () => {
          count(`${key}:y`);
          return "Y";
        }),
        context.run("z", () => {
          count(`${key}:z`);
          return "Z";
        }),
      ]);
      const joined = await context.run("join", () => `${x}${y}${z}`);
      note(context.workflowRunId, { joined });
      return joined;
    },
  },
  caller: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      const slow = await context.call("slow", { url: `${dest.base}/${key}/sleep/1500`, method: "POST", body: JSON.stringify({ q: 1 }), headers: { "content-type": "application/json" } });
      const flaky = await context.call("flaky", { url: `${dest.base}/${key}-f/flaky/1`, method: "GET", retries: 2 });
      note(context.workflowRunId, { slow: slow.status, flaky: flaky.status });
      return { slow: slow.status, flaky: flaky.status };
    },
  },
  failing: {
    failure: true,
    fn: async (context) => {
      await context.run("fine", () => "ok");
      await context.run("boom", () => {
        throw new Error("the step broke on purpose");
      });
    },
  },
  waiter: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      const r = await context.waitForEvent("payment", `paid-${key}`, { timeout: "30s" });
      note(context.workflowRunId, { eventData: r.eventData, timedOut: r.timeout });
      return r.eventData;
    },
  },
  impatient: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      const r = await context.waitForEvent("payment", `never-${key}`, { timeout: 2 });
      note(context.workflowRunId, { eventData: r.eventData ?? null, timedOut: r.timeout });
    },
  },
  child: {
    fn: async (context) => {
      const { key, n } = context.requestPayload;
      const doubled = await context.run("double", () => {
        count(`${key}:child`);
        return (n ?? 0) * 2;
      });
      note(context.workflowRunId, { childHeader: context.headers.get("x-invoke-header") });
      return { doubled };
    },
  },
  breaks: {
    fn: async (context) => {
      await context.run("explode", () => {
        throw new Error("the invoked workflow broke");
      });
    },
  },
  parent: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      const ok = await context.invoke("call child", { workflow: { routeFunction: routes.child.fn as never, options: {}, workflowId: "child" }, body: { key, n: 21 }, headers: { "x-invoke-header": "from-parent" } });
      const bad = await context.invoke("call breaking child", { workflow: { routeFunction: routes.breaks.fn as never, options: {}, workflowId: "breaks" }, body: { key }, retries: 0 });
      note(context.workflowRunId, { ok: ok.body, okFailed: ok.isFailed ?? false, badFailed: bad.isFailed, badCanceled: bad.isCanceled ?? false });
      return "parent done";
    },
  },
  durable: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      await context.run("before", () => {
        count(`${key}:before`);
        return 1;
      });
      await context.sleep("across the crash", 4);
      await context.run("after", () => {
        count(`${key}:after`);
        return 2;
      });
      return "survived";
    },
  },
  // Its first step waits for the test to open its gate: the test kills the server while the step runs.
  stalling: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      await context.run("held", async () => {
        count(`${key}:held`);
        await gateOf(key).opened;
        return 1;
      });
      await context.run("then", () => {
        count(`${key}:then`);
        return 2;
      });
      return "resumed";
    },
  },
  fragile: {
    failure: true,
    fn: async (context) => {
      const { key } = context.requestPayload;
      await context.run("prepare", () => {
        count(`${key}:prepare`);
        return "prepared";
      });
      const out = await context.run("fragile", () => {
        count(`${key}:fragile`);
        if (breaking.has(key)) throw new Error("the fragile step broke");
        return "mended";
      });
      note(context.workflowRunId, { out });
      return out;
    },
  },
  bulky: {
    fn: async (context) => {
      // 40 KB goes to R2 (above INLINE_BODY_MAX); two of 700 KB take the history past 1 MiB: lazy fetch.
      const small = await context.run("forty kilobytes", () => "s".repeat(40_000));
      const big1 = await context.run("first 700 KB", () => "a".repeat(700_000));
      const big2 = await context.run("second 700 KB", () => "b".repeat(700_000));
      const sizes = await context.run("sizes", () => [small.length, big1.length, big2.length, big1[0], big2[0]]);
      note(context.workflowRunId, { sizes });
      return sizes;
    },
  },
  hooked: {
    fn: async (context) => {
      const { key } = context.requestPayload;
      const hook = await context.createWebhook("hook");
      await context.run("announce", () => {
        hooks.set(key, hook.webhookUrl);
        return hook.webhookUrl;
      });
      const r = await context.waitForWebhook("wait for the hook", hook, "30s");
      const got = await context.run("read", async () =>
        r.request ? { method: r.request.method, body: await r.request.text(), header: r.request.headers.get("x-hook"), url: r.request.url } : null,
      );
      note(context.workflowRunId, { got, timedOut: r.timeout, webhookUrl: hook.webhookUrl });
    },
  },
  long: {
    fn: async (context) => {
      await context.sleep("long-nap", 60);
      note(context.workflowRunId, { woke: true });
    },
  },
};

/** The SDK's lazy fetches of a run's history (GET /v2/workflows/runs/{id}), seen by wrapping fetch. */
let lazyFetches = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  if (/\/v2\/workflows\/runs\/wfr_[^/?]+$/.test(url) && (init?.method ?? "GET") === "GET") lazyFetches++;
  return realFetch(input, init);
}) as typeof fetch;

/** The webhook URL each run of `hooked` made, by key. */
const hooks = new Map<string, string>();

/** How many times the failure function ran, by run. */
const failureCalls = new Map<string, number>();

/** A gate per key that the `stalling` route's first step waits on. */
const gates = new Map<string, { opened: Promise<void>; open: () => void }>();
function gateOf(key: string) {
  let gate = gates.get(key);
  if (!gate) {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    gate = { opened, open };
    gates.set(key, gate);
  }
  return gate;
}

/** Keys whose fragile step throws. */
const breaking = new Set<string>();

const handlers = new Map<string, (req: Request) => Promise<Response>>();
/** How many calls each route has finished handling (answered, or failed), by route name. */
const callsEnded = new Map<string, number>();

async function toRequest(req: http.IncomingMessage): Promise<Request> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
  const body = chunks.length ? Buffer.concat(chunks) : undefined;
  return new Request(`${appBase}${req.url}`, { method: req.method, headers, body: req.method === "GET" || req.method === "HEAD" ? undefined : body });
}

beforeAll(async () => {
  [server, dest] = await Promise.all([startServer(), startDestination()]);
  app = http.createServer(async (req, res) => {
    const name = (req.url ?? "").split("?")[0].replace(/^\/wf\//, "");
    try {
      const handler = handlers.get(name);
      if (!handler) {
        res.writeHead(404).end();
        return;
      }
      const response = await handler(await toRequest(req));
      const headers: Record<string, string> = {};
      response.headers.forEach((v, k) => (headers[k] = v));
      res.writeHead(response.status, headers).end(Buffer.from(await response.arrayBuffer()));
    } catch (err) {
      res.writeHead(500).end(String(err));
    } finally {
      callsEnded.set(name, (callsEnded.get(name) ?? 0) + 1);
    }
  });
  await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", () => resolve()));
  appBase = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  const qstashClient = new QStashClient({ baseUrl: server.url, token: USER1.token });
  const receiver = new Receiver({ currentSigningKey: USER1.currentSigningKey, nextSigningKey: USER1.nextSigningKey });
  for (const [name, r] of Object.entries(routes)) {
    const { handler } = serve(r.fn, {
      qstashClient,
      receiver,
      url: `${appBase}/wf/${name}`,
      ...(r.failure
        ? {
            failureFunction: async ({ context, failStatus, failResponse }) => {
              note(context.workflowRunId, { failStatus, failResponse, failurePayload: context.requestPayload });
              failureCalls.set(context.workflowRunId, (failureCalls.get(context.workflowRunId) ?? 0) + 1);
              return "failure handled";
            },
          }
        : {}),
    });
    handlers.set(name, handler);
  }
  wf = new WorkflowClient({ baseUrl: server.url, token: USER1.token });
}, 180_000);

afterAll(async () => {
  await new Promise<void>((resolve) => (app ? app.close(() => resolve()) : resolve()));
  await dest?.close();
  await server?.stop();
});

async function runOf(runId: string) {
  const logs = await wf.logs({ workflowRunId: runId });
  return logs.runs[0];
}

async function until(runId: string, state: string, timeoutMs = 30_000) {
  return waitFor(`run ${runId} in ${state}`, async () => {
    const run = await runOf(runId);
    return run?.workflowState === state ? run : undefined;
  }, timeoutMs, 250);
}

describe("Upstash Workflow", () => {
  it("runs sequential steps once each, forwards the trigger's headers to every step, and logs the run", async () => {
    const key = uniqueKey("seq");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/sequential`, body: { key }, headers: { "x-app-header": "from-trigger" } });
    const run = await until(workflowRunId, "RUN_SUCCESS");
    expect(seen.get(workflowRunId)).toMatchObject({ a: { value: 20 }, b: 42, headers: "from-trigger" });
    expect(ran.get(`${key}:first`)).toBe(1);
    expect(ran.get(`${key}:second`)).toBe(1);
    expect(JSON.parse(run.workflowRunResponse!)).toEqual({ total: 42 });
    const names = run.steps.flatMap((g) => g.steps.map((s) => (s as { stepName?: string }).stepName));
    expect(names).toEqual(["init", "first", "second"]);
  });

  it("sleeps and sleeps until a time", async () => {
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/sleepy`, body: { key: uniqueKey("sleep") } });
    // While it sleeps, the logs show the step that waits for its time as under way.
    const sleeping = await waitFor("the sleeping step in the logs", async () => {
      const group = (await runOf(workflowRunId)).steps.find((g) => g.type === "next");
      return group?.steps.length ? group.steps : undefined;
    }, 10_000, 100);
    expect(sleeping[0]).toMatchObject({ state: "STEP_PROGRESS" });
    await until(workflowRunId, "RUN_SUCCESS", 40_000);
    const s = seen.get(workflowRunId) as { slept: number; until: number };
    expect(s.slept).toBeGreaterThanOrEqual(3000);
  });

  it("runs parallel steps, each once, and joins them", async () => {
    const key = uniqueKey("par");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/parallel`, body: { key } });
    await until(workflowRunId, "RUN_SUCCESS");
    expect(seen.get(workflowRunId)).toMatchObject({ joined: "XYZ" });
    for (const s of ["x", "y", "z"]) expect(ran.get(`${key}:${s}`)).toBe(1);
  });

  it("calls a slow endpoint (context.call) and one that fails first, through callbacks", async () => {
    const key = uniqueKey("call");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/caller`, body: { key } });
    await until(workflowRunId, "RUN_SUCCESS", 40_000);
    expect(seen.get(workflowRunId)).toMatchObject({ slow: 200, flaky: 200 });
    expect(dest.hits.filter((h) => h.key === `${key}-f`)).toHaveLength(2);
  });

  it("runs the failure function with the run's payload when a step keeps failing, and the run is failed", async () => {
    const key = uniqueKey("fail");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/failing`, body: { key }, retries: 0 });
    const failed = await until(workflowRunId, "RUN_FAILED");
    // The logs name the step that failed, with the SDK's error.
    const next = failed.steps.find((g) => g.type === "next");
    expect(next?.steps[0]).toMatchObject({ state: "STEP_FAILED" });
    expect(JSON.stringify(next)).toContain("the step broke on purpose");
    const s = await waitFor("the failure function", () => seen.get(workflowRunId)?.failResponse as string | undefined, 20_000);
    expect(s).toContain("the step broke on purpose");
    expect(seen.get(workflowRunId)?.failurePayload).toEqual({ key });
    // The run's log carries its failure function's message: how it went, and the failed step's answer it was given.
    const logged = await waitFor("the failure function in the run's log", async () => {
      const f = (await runOf(workflowRunId)).failureFunction;
      return f?.state === "CALLBACK_SUCCESS" ? f : undefined;
    });
    expect(logged).toMatchObject({ failStatus: 500, dlqId: failed.dlqId, responseStatus: 200, url: `${appBase}/wf/failing` });
    expect(logged.failResponse).toContain("the step broke on purpose");
    expect(logged.messageId).toMatch(/\S/);
    // client.dlq.retryFailureFunction calls the failure function again, with the same facts.
    failureCalls.delete(workflowRunId);
    const again = await wf.dlq.retryFailureFunction({ dlqId: failed.dlqId! });
    expect(again.workflowRunId).toBe(workflowRunId);
    await waitFor("the failure function, again", () => failureCalls.get(workflowRunId), 20_000);
  });

  it("waits for an event that notify delivers, and times out a wait nobody answers", async () => {
    const key = uniqueKey("wait");
    const waiting = await wf.trigger({ url: `${appBase}/wf/waiter`, body: { key } });
    const impatient = await wf.trigger({ url: `${appBase}/wf/impatient`, body: { key } });
    const waiters = await waitFor("the run to wait", async () => {
      const w = await wf.getWaiters({ eventId: `paid-${key}` });
      return w.length ? w : undefined;
    }, 15_000, 250);
    expect(waiters[0].url).toBe(`${appBase}/wf/waiter`);
    const notified = await wf.notify({ eventId: `paid-${key}`, eventData: { amount: 42 } });
    expect(notified).toHaveLength(1);
    await until(waiting.workflowRunId, "RUN_SUCCESS");
    expect(seen.get(waiting.workflowRunId)).toMatchObject({ eventData: { amount: 42 }, timedOut: false });
    expect(await wf.getWaiters({ eventId: `paid-${key}` })).toEqual([]);
    // Nobody waits any more: a second notify reaches no one.
    expect(await wf.notify({ eventId: `paid-${key}`, eventData: "late" })).toEqual([]);
    await until(impatient.workflowRunId, "RUN_SUCCESS", 20_000);
    expect(seen.get(impatient.workflowRunId)).toMatchObject({ eventData: null, timedOut: true });
  });

  it("keeps an event notified for one run until that run waits for it", async () => {
    const key = uniqueKey("early");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/waiter`, body: { key }, delay: 3 });
    await wf.notify({ eventId: `paid-${key}`, eventData: { early: true }, workflowRunId });
    await until(workflowRunId, "RUN_SUCCESS", 20_000);
    expect(seen.get(workflowRunId)).toMatchObject({ eventData: { early: true }, timedOut: false });
  });

  it("invokes another workflow and gets its result, or hears that it failed", async () => {
    const key = uniqueKey("invoke");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/parent`, body: { key } });
    await until(workflowRunId, "RUN_SUCCESS", 30_000);
    expect(seen.get(workflowRunId)).toMatchObject({ ok: { doubled: 42 }, okFailed: false, badFailed: true, badCanceled: false });
    expect(ran.get(`${key}:child`)).toBe(1);
    const children = (await wf.logs({ workflowUrl: `${appBase}/wf/child` })).runs;
    const child = children.find((r) => r.invoker?.workflowRunId === workflowRunId);
    expect(child?.workflowState).toBe("RUN_SUCCESS");
    expect(seen.get(child!.workflowRunId)).toMatchObject({ childHeader: "from-parent" });
  });

  it("shows runs in the console: the list, a run's steps with their outputs, and the run that invoked it", async () => {
    const key = uniqueKey("console");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/parent`, body: { key } });
    await until(workflowRunId, "RUN_SUCCESS", 30_000);
    const child = (await wf.logs({ workflowUrl: `${appBase}/wf/child` })).runs.find((r) => r.invoker?.workflowRunId === workflowRunId)!;
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-sync", "--disable-component-update"],
    });
    try {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${server.url}/console`);
      await page.getByRole("button", { name: "defaultUser" }).click();
      await page.waitForURL(`${server.url}/console`);
      await page.getByRole("link", { name: "Workflows" }).click();
      await page.getByLabel("Run id").fill(child.workflowRunId);
      await page.getByRole("button", { name: "Filter" }).click();
      await page.getByRole("link", { name: child.workflowRunId }).click();
      expect(await page.locator(".badge").first().textContent()).toBe("RUN_SUCCESS");
      expect(await page.locator("li[data-step]").evaluateAll((li) => li.map((l) => l.getAttribute("data-step")))).toEqual(["init", "double"]);
      expect(await page.locator("li[data-step=double]").textContent()).toContain("42");
      expect(await page.locator("li[data-step=init]").textContent()).toContain(key);
      await page.locator("a[data-rel=invoker]").click();
      expect(page.url()).toBe(`${server.url}/console/workflows/${workflowRunId}`);
      const steps = await page.locator("li[data-step]").evaluateAll((li) => li.map((l) => l.getAttribute("data-step")));
      expect(steps).toEqual(["init", "call child", "call breaking child"]);
      expect(await page.locator("main").textContent()).toContain("parent done");
    } finally {
      await browser.close();
    }
  });

  it("shows the step under way and the one being retried in the logs (a `next` group)", async () => {
    const key = uniqueKey("next");
    breaking.add(key);
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/fragile`, body: { key }, retries: 2, retryDelay: "4000" });
    type Next = { messageId: string; state: string; stepName?: string; retries: number; retryDelay?: string; errors?: { error: string; status: number }[] };
    const nextOf = (run: Awaited<ReturnType<typeof runOf>>) => run.steps.find((g) => g.type === "next")?.steps as Next[] | undefined;
    const retrying = await waitFor("the failed step waiting for its retry", async () => {
      const n = nextOf(await runOf(workflowRunId));
      return n?.[0]?.state === "STEP_RETRY" ? n : undefined;
    }, 20_000, 200);
    expect(retrying).toHaveLength(1);
    expect(retrying[0]).toMatchObject({ state: "STEP_RETRY", stepName: "fragile", retries: 2, retryDelay: "4000" });
    expect(JSON.stringify(retrying[0].errors)).toContain("the fragile step broke");
    expect(retrying[0].errors![0].status).toBe(500);
    // Mended before the retry: the run succeeds, and the logs have no step left under way.
    breaking.delete(key);
    const done = await until(workflowRunId, "RUN_SUCCESS", 30_000);
    expect(nextOf(done)).toBeUndefined();
    expect(ran.get(`${key}:fragile`)).toBe(2);
  });

  it("puts a failed run in the workflow DLQ, resumes it from the failed step and restarts it from scratch", async () => {
    const key = uniqueKey("dlq");
    breaking.add(key);
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/fragile`, body: { key }, retries: 0 });
    const failed = await until(workflowRunId, "RUN_FAILED");
    expect(failed.dlqId).toBeTruthy();
    await waitFor("the failure function", () => seen.get(workflowRunId)?.failResponse as string | undefined, 20_000);
    // The SDK's list, filtered by run: the entry carries when its run started and how its failure function answered.
    const entry = await waitFor("the run in the workflow DLQ, with its failure function's answer", async () => {
      const { messages } = await wf.dlq.list({ filter: { workflowRunId } });
      expect(messages.length).toBeLessThanOrEqual(1);
      return messages[0]?.failureCallbackInfo?.state === "CALLBACK_SUCCESS" ? messages[0] : undefined;
    });
    expect(entry.dlqId).toBe(failed.dlqId);
    expect(entry.workflowCreatedAt).toBe(failed.workflowRunCreatedAt);
    expect(entry.failureCallbackInfo).toMatchObject({ state: "CALLBACK_SUCCESS", responseStatus: 200 });
    expect((await wf.dlq.list({ filter: { workflowRunId, failureFunctionState: "CALLBACK_FAIL" } })).messages).toEqual([]);
    expect((await wf.dlq.list({ filter: { workflowRunId, workflowCreatedAt: entry.workflowCreatedAt } })).messages.map((m) => m.dlqId)).toEqual([entry.dlqId]);
    // Resume: a new run that starts at the failed step ("prepare" is not run again).
    breaking.delete(key);
    const resumed = await wf.dlq.resume(entry.dlqId);
    const resumedId = resumed.workflowRuns[0].workflowRunId;
    expect(resumedId).not.toBe(workflowRunId);
    await until(resumedId, "RUN_SUCCESS");
    expect(seen.get(resumedId)).toMatchObject({ out: "mended" });
    expect(ran.get(`${key}:prepare`)).toBe(1);
    expect(ran.get(`${key}:fragile`)).toBe(2);
    expect((await wf.dlq.list()).messages.find((m) => m.workflowRunId === workflowRunId)).toBeUndefined();

    // Restart: fail another run, then run it again from the first step.
    breaking.add(key);
    const second = await wf.trigger({ url: `${appBase}/wf/fragile`, body: { key }, retries: 0 });
    const failedAgain = await until(second.workflowRunId, "RUN_FAILED");
    breaking.delete(key);
    const restarted = await wf.dlq.restart(failedAgain.dlqId!);
    const restartedId = restarted.workflowRuns[0].workflowRunId;
    await until(restartedId, "RUN_SUCCESS");
    expect(ran.get(`${key}:prepare`)).toBe(3);
    const run = await runOf(restartedId);
    expect(run.steps.flatMap((g) => g.steps.map((st) => (st as { stepName?: string }).stepName))).toEqual(["init", "prepare", "fragile"]);
  });

  it("keeps large step outputs in R2 and hands a history above 1 MiB to the SDK's lazy fetch", async () => {
    const before = lazyFetches;
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/bulky`, body: { key: uniqueKey("bulky") } });
    await until(workflowRunId, "RUN_SUCCESS", 40_000);
    expect(seen.get(workflowRunId)).toMatchObject({ sizes: [40_000, 700_000, 700_000, "a", "b"] });
    // The calls after the second large step carried no history: the SDK fetched it.
    expect(lazyFetches - before).toBeGreaterThanOrEqual(1);
  });

  it("resumes a run waiting for its webhook when a third party calls it (no token)", async () => {
    const key = uniqueKey("hook");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/hooked`, body: { key } });
    const url = await waitFor("the webhook URL", () => hooks.get(key), 15_000);
    expect(url.startsWith(`${server.url}/v2/workflows/hooks/defaultUser/${workflowRunId}/`)).toBe(true);
    const res = await fetch(url, { method: "POST", headers: { "x-hook": "yes", "content-type": "text/plain" }, body: "paid in full" });
    expect(res.status).toBe(200);
    await until(workflowRunId, "RUN_SUCCESS");
    expect(seen.get(workflowRunId)).toMatchObject({ timedOut: false, got: { method: "POST", body: "paid in full", header: "yes", url } });
    // The run ended: its webhook answers 404.
    expect((await fetch(url, { method: "POST", body: "again" })).status).toBe(404);
  });

  it("cancels a run that waits for an event: its wait is gone and its timeout message cancelled", async () => {
    const key = uniqueKey("cancel-wait");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/waiter`, body: { key } });
    await waitFor("the run to wait", async () => ((await wf.getWaiters({ eventId: `paid-${key}` })).length ? true : undefined), 15_000, 250);
    expect(await wf.cancel({ ids: workflowRunId })).toMatchObject({ cancelled: 1 });
    expect(await wf.getWaiters({ eventId: `paid-${key}` })).toEqual([]);
    // The wait's timeout message (a delayed message of the run) was cancelled with it, found by run.
    const res = await fetch(`${server.url}/v2/logs?state=CANCELED&url=${encodeURIComponent(`${appBase}/wf/waiter`)}&count=1000`, { headers: { authorization: `Bearer ${USER1.token}` } });
    const { logs } = (await res.json()) as { logs: { header: Record<string, string[]> }[] };
    expect(logs.some((l) => l.header["Upstash-Workflow-Runid"]?.[0] === workflowRunId)).toBe(true);
  });

  it("cancels a run from the client: its pending sleep never wakes", async () => {
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/long`, body: { key: uniqueKey("long") } });
    await waitFor("the run to start sleeping", async () => {
      const run = await runOf(workflowRunId);
      return run && run.steps.length >= 1 ? true : undefined;
    });
    const res = await wf.cancel({ ids: workflowRunId });
    expect(res).toMatchObject({ cancelled: 1 });
    const run = await until(workflowRunId, "RUN_CANCELED");
    expect(run.workflowRunCompletedAt).toBeGreaterThan(0);
    // A run that ended takes no more steps.
    const step = await fetch(`${server.url}/v2/publish/${appBase}/wf/long`, {
      method: "POST",
      headers: { authorization: `Bearer ${USER1.token}`, "upstash-workflow-runid": workflowRunId, "upstash-workflow-init": "false" },
      body: "{}",
    });
    expect(step.status).toBe(400);
  });

  // Once with QSTASH_URL and QSTASH_TOKEN, once with QSTASH_DEV=true: the SDK then checks GET /v2/keys with the dev
  // token, expects the dev signing keys, and uses the dev credentials for its client and its receiver.
  it.each([
    ["QSTASH_URL", () => ({ QSTASH_URL: server.url })],
    ["QSTASH_DEV=true", () => ({ QSTASH_DEV: "true", QSTASH_DEV_PORT: String(server.port), QSTASH_URL: "http://127.0.0.1:9/not-used", QSTASH_TOKEN: "not-used" })],
  ])("runs the example app (npm run example:workflow) to the end, found by %s", async (_how, env) => {
    const { spawn } = await import("node:child_process");
    const port = await freePort();
    const child = spawn(process.execPath, ["examples/workflow/order-pipeline.mjs"], {
      cwd: path.resolve(__dirname, "..", ".."),
      env: { ...process.env, ...env(), EXAMPLE_PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
      child.once("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, output).toBe(0);
    expect(output).toContain("run ended: RUN_SUCCESS");
    expect(output).toContain("steps: init → reserve stock → charge card → cooling-off period → bank confirmation → ship");
  }, 120_000);

  // Last: these restart the server.
  it("survives a SIGKILL of npm run dev while a run sleeps: after the restart the sleep ends, each step once", async () => {
    const key = uniqueKey("crash");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/durable`, body: { key } });
    // The kill comes when no call of the run is under way: the sleep is stored and it is the only message not done.
    // (A kill while a call is under way re-sends that call after the restart, and its step may run again: the next
    // test.)
    await waitFor("the run to sleep, with no call under way", async () => {
      const run = await runOf(workflowRunId);
      const done = (run?.steps ?? []).filter((g) => g.type !== "next").flatMap((g) => g.steps) as { stepName?: string; messageId?: string }[];
      const sleep = done.find((st) => st.stepName === "across the crash");
      const next = ((run?.steps ?? []).find((g) => g.type === "next")?.steps ?? []) as { messageId?: string }[];
      return sleep && next.length === 1 && next[0].messageId === sleep.messageId ? true : undefined;
    }, 15_000, 50);
    expect(ran.get(`${key}:before`)).toBe(1);
    await server.kill();
    server = await startServer({ port: server.port, stateDir: server.stateDir });
    const run = await until(workflowRunId, "RUN_SUCCESS", 60_000);
    expect(run.workflowRunResponse).toBe('"survived"');
    expect(ran.get(`${key}:before`)).toBe(1);
    expect(ran.get(`${key}:after`)).toBe(1);
  }, 120_000);

  it("survives a SIGKILL of npm run dev while a step runs: the cut-off call is sent again, the run finishes", async () => {
    const key = uniqueKey("cut");
    const { workflowRunId } = await wf.trigger({ url: `${appBase}/wf/stalling`, body: { key } });
    await waitFor("the held step to start", () => (ran.get(`${key}:held`) ? true : undefined), 15_000, 50);
    const ended = callsEnded.get("stalling") ?? 0;
    await server.kill();
    // The step ends while the server is down: the SDK cannot hand its result over, and the call ends in an error.
    gateOf(key).open();
    await waitFor("the cut-off call to end", () => ((callsEnded.get("stalling") ?? 0) > ended ? true : undefined), 30_000, 50);
    server = await startServer({ port: server.port, stateDir: server.stateDir });
    // The call the crash cut off is re-sent once its lease runs out (MAX_TIMEOUT is 10 s here) by the sweeper.
    const run = await until(workflowRunId, "RUN_SUCCESS", 150_000);
    expect(run.workflowRunResponse).toBe('"resumed"');
    // At least once: the held step ran in the cut-off call and again in the re-sent one; the step after it, once.
    expect(ran.get(`${key}:held`)).toBe(2);
    expect(ran.get(`${key}:then`)).toBe(1);
  }, 240_000);
});
