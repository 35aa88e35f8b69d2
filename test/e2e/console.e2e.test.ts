/**
 * The web console in a real headless Chromium (Debian's `chromium`, driven by playwright-core), against
 * `npm run dev`: sign-in (read-write, read-only, dev tenants), a failing message found through a filter and retried
 * from the DLQ, schedules with a bad cron refused while typing, the live tail, CSRF refusals, and tenant isolation.
 */
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@upstash/qstash";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, startDestination } from "../support/destination";
import { USER1, USER2, hitsFor, uniqueKey, waitFor } from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** No sandbox (tests run as root), and none of Chromium's own network traffic (this machine has no internet). */
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const ADMIN_SECRET = "console-test-admin-secret";

/** Playwright's own assertions live in @playwright/test; these poll a locator the same way. */
const UI_TIMEOUT = 10_000;
async function hasText(loc: Locator, text: string, timeoutMs = UI_TIMEOUT): Promise<void> {
  await waitFor(`"${text}" in ${loc}`, async () => ((await loc.first().textContent({ timeout: 500 }).catch(() => null))?.includes(text) ? true : undefined), timeoutMs, 100);
}
async function visible(loc: Locator, timeoutMs = UI_TIMEOUT): Promise<void> {
  await loc.first().waitFor({ state: "visible", timeout: timeoutMs });
}
async function count(loc: Locator, n: number, timeoutMs = UI_TIMEOUT): Promise<void> {
  await waitFor(`${n} of ${loc}`, async () => ((await loc.count()) === n ? true : undefined), timeoutMs, 100);
}
async function attribute(loc: Locator, name: string, value: string, timeoutMs = UI_TIMEOUT): Promise<void> {
  await waitFor(`${name}="${value}" on ${loc}`, async () => ((await loc.getAttribute(name, { timeout: 500 }).catch(() => null)) === value ? true : undefined), timeoutMs, 100);
}

let server: DevServer;
let dest: Destination;
let browser: Browser;
/** A page of another origin (another port of 127.0.0.1), for the CSRF attack. */
let evil: http.Server;
let evilUrl: string;
let evilHtml = "";

showServerOnFailure(() => server);

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's package (sudo apt-get install -y chromium; .ci/run does it) or set CHROMIUM_PATH`);
  }
  [server, dest] = await Promise.all([startServer({ vars: { ADMIN_SECRET } }), startDestination()]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  evil = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(evilHtml);
  });
  await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", () => resolve()));
  evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (evil ? evil.close(() => resolve()) : resolve()));
  await dest?.close();
  await server?.stop();
});

function client(token: string): Client {
  return new Client({ baseUrl: server.url, token });
}

async function signInAsDev(context: BrowserContext, name: "defaultUser" | "testUser1" | "testUser2" | "testUser3"): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${server.url}/console`);
  expect(await page.title()).toMatch(/Sign in/);
  await page.getByRole("button", { name }).click();
  await page.waitForURL(`${server.url}/console`);
  return page;
}

async function signInWithToken(context: BrowserContext, token: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${server.url}/console/login`);
  await page.getByLabel("Tenant token").fill(token);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL(`${server.url}/console`);
  return page;
}

async function apiKeys(token: string): Promise<{ current: string; next: string }> {
  const res = await fetch(`${server.url}/v2/keys`, { headers: { authorization: `Bearer ${token}` } });
  return (await res.json()) as { current: string; next: string };
}

describe("console", () => {
  it("signs in with a token or a dev tenant, sets a strict HttpOnly cookie, and signs out", async () => {
    const context = await browser.newContext();
    const anonymous = await context.newPage();
    await anonymous.goto(`${server.url}/console/dlq`);
    expect(anonymous.url()).toContain("/console/login?next=%2Fconsole%2Fdlq");
    await anonymous.getByLabel("Tenant token").fill("not-a-token");
    await anonymous.getByRole("button", { name: "Sign in", exact: true }).click();
    await hasText(anonymous.getByRole("alert"), "not valid");

    const page = await signInAsDev(context, "defaultUser");
    await hasText(page.locator("header.top"), "dev-default");
    const [cookie] = (await context.cookies()).filter((c) => c.name === "boomerang_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/console" });
    expect(cookie.value).not.toBe("");
    for (const label of ["Last hour", "Last 24 hours", "Dead-letter queue", "Deliveries per minute, last hour", "Queues", "Signing keys"]) {
      await visible(page.getByRole("heading", { name: label }));
    }
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/console\/login/);
    expect((await context.cookies()).filter((c) => c.name === "boomerang_session")).toEqual([]);
    await page.goto(`${server.url}/console/schedules`);
    expect(page.url()).toContain("/console/login");
    await context.close();
  });

  it("gives a read-only token a read-only console: no buttons that would fail, and changes refused", async () => {
    const created = await fetch(`${server.url}/admin/tenants`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_SECRET}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "console-ro" }),
    });
    expect(created.status).toBe(201);
    const tenant = (await created.json()) as { token: string; readOnlyToken: string; tenantId: string };
    // Something to look at: a schedule made with the read-write token.
    await client(tenant.token).schedules.create({ destination: `${dest.base}/${uniqueKey("ro")}/ok`, cron: "0 0 1 1 *" });

    const context = await browser.newContext();
    const page = await signInWithToken(context, tenant.readOnlyToken);
    await hasText(page.locator("header.top"), "read-only");
    await count(page.getByRole("button", { name: "Rotate signing keys" }), 0);
    await page.goto(`${server.url}/console/schedules`);
    await count(page.locator("tr[data-schedule-id]"), 1);
    for (const name of ["Pause", "Delete", "Resume"]) await count(page.getByRole("button", { name }), 0);
    await count(page.getByRole("link", { name: "New schedule" }), 0);
    await page.goto(`${server.url}/console/publish`);
    await visible(page.getByText("read-only: it cannot publish"));
    // A hand-made post with the right CSRF value still changes nothing: the API refuses the token.
    const csrf = await page.locator("input[name=_csrf]").first().inputValue();
    const before = await apiKeys(tenant.token);
    const res = await page.request.post(`${server.url}/console/keys/rotate`, { form: { _csrf: csrf }, maxRedirects: 0 });
    expect(res.status()).toBe(303);
    expect(await apiKeys(tenant.token)).toEqual(before);
    await page.goto(`${server.url}/console`);
    await hasText(page.getByRole("alert"), "read-only");
    await context.close();
  });

  it("finds a failing message through a filter, shows its attempts, retries it from the DLQ and sees it delivered", async () => {
    const key = uniqueKey("fail");
    const { messageId } = await client(USER1.token).publishJSON({ url: `${dest.base}/${key}/flaky/1`, body: { order: 42 }, retries: 0 });
    await waitFor("the message to fail", async () => {
      const res = await fetch(`${server.url}/v2/dlq?messageId=${messageId}`, { headers: { authorization: `Bearer ${USER1.token}` } });
      const body = (await res.json()) as { messages: unknown[] };
      return body.messages.length ? true : undefined;
    }, 20_000);

    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    await page.getByRole("link", { name: "Logs", exact: true }).click();
    await page.getByLabel("State").selectOption("FAILED");
    await page.getByLabel("URL", { exact: true }).fill(`${dest.base}/${key}/flaky/1`);
    await page.getByRole("button", { name: "Filter" }).click();
    await count(page.locator("tr[data-message-id]"), 1);
    await page.getByRole("link", { name: messageId }).click();
    const timeline = page.getByRole("list", { name: /Attempts and state changes/ });
    await hasText(timeline.locator("li[data-state=ERROR]"), "HTTP 500");
    await count(timeline.locator("li[data-state=FAILED]"), 1);
    await visible(page.getByText('"order": 42'));
    await timeline.locator("li[data-state=ERROR] summary").click();
    await hasText(timeline.locator("li[data-state=ERROR]"), "status 500");

    await page.getByRole("link", { name: /In the DLQ/ }).click();
    await page.getByLabel("Retries").fill("2");
    await page.getByRole("button", { name: "Retry now" }).click();
    await hasText(page.getByRole("status"), "Retried as message");
    const retriedId = page.url().split("/console/messages/")[1];
    expect(retriedId).not.toBe(messageId);
    await waitFor("the retried message to be delivered", async () => {
      await page.reload();
      return (await page.locator("li[data-state=DELIVERED]").count()) ? true : undefined;
    }, 20_000, 500);
    await hasText(page.getByText("Retries").locator("xpath=following-sibling::dd[1]"), "2");
    await context.close();
  });

  it("cancels a pending message from its page, and retries and deletes DLQ entries in bulk", async () => {
    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    page.on("dialog", (d) => void d.accept());
    const key = uniqueKey("bulk");
    const { messageId } = await client(USER1.token).publishJSON({ url: `${dest.base}/${key}/ok`, body: {}, delay: 3600 });
    await page.goto(`${server.url}/console/messages/${messageId}`);
    await page.getByRole("button", { name: "Cancel message" }).click();
    await hasText(page.getByRole("status"), "Message cancelled");
    await count(page.getByRole("button", { name: "Cancel message" }), 0);
    await hasText(page.locator("li[data-state=CANCELED]"), "CANCELED");

    const failing = `${dest.base}/${key}/status/500`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client(USER1.token).publishJSON({ url: failing, body: { i }, retries: 0 })).messageId);
    await page.goto(`${server.url}/console/dlq?url=${encodeURIComponent(failing)}`);
    await waitFor("3 DLQ entries", async () => {
      await page.reload();
      return (await page.locator("tr[data-dlq-id]").count()) === 3 ? true : undefined;
    }, 20_000, 500);
    // Retry one (it fails again and comes back under a new id), then delete all that are there.
    await page.locator("tr[data-dlq-id] input[name=dlqIds]").first().check();
    await page.getByRole("button", { name: "Retry selected" }).click();
    await hasText(page.getByRole("status"), "Retried 1 entry");
    await waitFor("the retried entry back in the DLQ", async () => {
      await page.goto(`${server.url}/console/dlq?url=${encodeURIComponent(failing)}`);
      return (await page.locator("tr[data-dlq-id]").count()) === 3 ? true : undefined;
    }, 20_000, 500);
    await page.getByLabel("Select all entries").check();
    await page.getByRole("button", { name: "Delete selected" }).click();
    await hasText(page.getByRole("status"), "Deleted 3 entries");
    await hasText(page.locator("main"), "no entries that match");
    expect(hitsFor(dest, key).filter((h) => h.path.endsWith("/status/500"))).toHaveLength(4);
    await context.close();
  });

  it("creates, pauses and deletes a schedule, refusing a bad cron while it is typed", async () => {
    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    page.on("dialog", (d) => void d.accept());
    await page.goto(`${server.url}/console/schedules/new`);
    const cron = page.getByLabel("Cron expression");
    await cron.fill("61 * * * *");
    await hasText(page.locator("#cron-preview [role=alert]"), "not a valid cron expression");
    await attribute(cron, "aria-invalid", "true");
    await page.getByLabel("Destination URL or URL group").fill(`${dest.base}/${uniqueKey("sched")}/ok`);
    await page.getByRole("button", { name: "Create schedule" }).click();
    // The browser keeps the form: the field reports the parser's complaint.
    expect(page.url()).toContain("/console/schedules/new");
    expect(await cron.evaluate((el) => (el as HTMLInputElement).validationMessage)).toContain("not a valid cron expression");

    await cron.fill("30 9 * * 1-5");
    await page.getByLabel("Time zone (CRON_TZ)").selectOption("Europe/Berlin");
    await hasText(page.locator("#cron-preview"), "At 09:30, on Monday through Friday (Europe/Berlin)");
    await count(page.locator("#cron-preview li"), 5);
    await attribute(cron, "aria-invalid", "false");
    await page.getByLabel("Schedule id (optional)").fill("console-nightly");
    await page.getByLabel("Retries").fill("1");
    await page.getByRole("button", { name: "Create schedule" }).click();
    await hasText(page.getByRole("status"), "Schedule console-nightly saved");
    const row = page.locator("tr[data-schedule-id=console-nightly]");
    await hasText(row, "At 09:30, on Monday through Friday (Europe/Berlin)");
    await hasText(row, "CRON_TZ=Europe/Berlin 30 9 * * 1-5");

    // Edit: the form comes back filled in; a new cron replaces the old one.
    await row.getByRole("link", { name: "console-nightly" }).click();
    expect(await page.getByLabel("Cron expression").inputValue()).toBe("30 9 * * 1-5");
    expect(await page.getByLabel("Time zone (CRON_TZ)").inputValue()).toBe("Europe/Berlin");
    await page.getByLabel("Cron expression").fill("0 10 * * 1-5");
    await page.getByRole("button", { name: "Save schedule" }).click();
    await hasText(page.locator("tr[data-schedule-id=console-nightly]"), "At 10:00, on Monday through Friday (Europe/Berlin)");

    await page.locator("tr[data-schedule-id=console-nightly]").getByRole("button", { name: "Pause" }).click();
    await hasText(page.locator("tr[data-schedule-id=console-nightly] .badge"), "paused");
    const viaApi = await client(USER1.token).schedules.get("console-nightly");
    expect(viaApi.isPaused).toBe(true);
    expect(viaApi.retries).toBe(1);

    await page.locator("tr[data-schedule-id=console-nightly]").getByRole("button", { name: "Delete" }).click();
    await hasText(page.getByRole("status"), "deleted");
    await count(page.locator("tr[data-schedule-id=console-nightly]"), 0);
    await expect(client(USER1.token).schedules.get("console-nightly")).rejects.toThrow();
    await context.close();
  });

  it("pages through the logs with the API's cursor, grouped by message", async () => {
    const key = uniqueKey("pages");
    const sent = await client(USER1.token).batchJSON(Array.from({ length: 40 }, (_, i) => ({ url: `${dest.base}/${key}/ok`, body: { i }, label: key })));
    const ids = new Set(sent.map((r) => (r as { messageId: string }).messageId));
    await waitFor("40 deliveries", () => (hitsFor(dest, key).length >= 40 ? true : undefined), 30_000);
    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    await page.goto(`${server.url}/console/logs?label=${key}`);
    const seen = new Set<string>();
    let pages = 0;
    for (;;) {
      pages++;
      for (const id of await page.locator("tr[data-message-id]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-message-id")!))) seen.add(id);
      const next = page.getByRole("link", { name: "Next page" });
      if ((await next.count()) === 0) break;
      await next.click();
      await page.waitForLoadState();
      expect(page.url()).toContain("cursor=");
    }
    // 40 messages × 3 entries (CREATED, ACTIVE, DELIVERED) at 100 entries a page.
    expect(pages).toBeGreaterThanOrEqual(2);
    expect([...ids].every((id) => seen.has(id))).toBe(true);
    expect(seen.size).toBe(40);
    await context.close();
  });

  it("shows a new publish in the live tail without a reload", async () => {
    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    const key = uniqueKey("tail");
    await page.goto(`${server.url}/console/logs?label=${key}`);
    await page.getByLabel(/Live tail/).check();
    await hasText(page.locator("#tail-status"), "waiting for new events");
    const { messageId } = await client(USER1.token).publishJSON({ url: `${dest.base}/${key}/ok`, body: { live: true }, label: key });
    await visible(page.locator("#tail-list").getByRole("link", { name: messageId }).first(), 15_000);
    await visible(page.locator("#tail-list tr").filter({ hasText: "DELIVERED" }).first(), 15_000);
    await context.close();
  });

  it("refuses changes without the CSRF value or from another site, and changes nothing", async () => {
    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    const before = await apiKeys(USER1.token);

    const bare = await page.request.post(`${server.url}/console/keys/rotate`, { form: { x: "1" }, maxRedirects: 0 });
    expect(bare.status()).toBe(403);
    expect(await bare.text()).toContain("Refused (CSRF check)");

    const csrf = await page.locator("input[name=_csrf]").first().inputValue();
    const foreign = await page.request.post(`${server.url}/console/keys/rotate`, {
      form: { _csrf: csrf },
      headers: { origin: "http://127.0.0.1:9" },
      maxRedirects: 0,
    });
    expect(foreign.status()).toBe(403);

    // A page on another origin posts a form at the console in the signed-in browser.
    evilHtml = `<form id="f" method="post" action="${server.url}/console/keys/rotate"><input name="_csrf" value="guess"></form>
      <script>document.getElementById("f").submit()</script>`;
    const attacked = await context.newPage();
    await attacked.goto(evilUrl);
    await attacked.waitForURL(`${server.url}/console/keys/rotate`);
    await hasText(attacked.locator("body"), "Nothing was changed");
    expect(await apiKeys(USER1.token)).toEqual(before);
    await context.close();
  });

  it("never shows one tenant another tenant's data", async () => {
    const key = uniqueKey("other");
    const other = client(USER2.token);
    const { messageId } = await other.publishJSON({ url: `${dest.base}/${key}/ok`, body: { secret: key }, label: key });
    await other.schedules.create({ destination: `${dest.base}/${key}/ok`, cron: "0 0 1 1 *", scheduleId: `other-${key}` });
    await other.queue({ queueName: `q-${key}` }).upsert({ parallelism: 1 });
    await waitFor("the other tenant's message in its logs", async () => {
      const r = (await other.logs({ filter: { messageId } })) as { logs: unknown[] };
      return r.logs.length ? true : undefined;
    });

    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    await page.goto(`${server.url}/console/logs?messageId=${messageId}`);
    await visible(page.getByText("No log entries match"));
    const direct = await page.goto(`${server.url}/console/messages/${messageId}`);
    expect(direct?.status()).toBe(404);
    expect(await page.content()).not.toContain(key);
    await page.goto(`${server.url}/console/schedules`);
    expect(await page.content()).not.toContain(`other-${key}`);
    await page.goto(`${server.url}/console/queues`);
    expect(await page.content()).not.toContain(`q-${key}`);
    await page.goto(`${server.url}/console/logs?label=${key}`);
    await visible(page.getByText("No log entries match"));

    // The same browser signed in as the other tenant does see them.
    const mine = await signInAsDev(await browser.newContext(), "testUser1");
    await mine.goto(`${server.url}/console/messages/${messageId}`);
    await visible(mine.getByText(key).first());
    await context.close();
  });
});

describe("console management", () => {
  it("publishes from the form (showing it as curl and SDK code), and manages queues, URL groups, flow control and keys", async () => {
    const context = await browser.newContext();
    const page = await signInAsDev(context, "testUser2");
    page.on("dialog", (d) => void d.accept());
    const key = uniqueKey("manage");
    const token = "eyJVc2VySUQiOiJ0ZXN0VXNlcjIiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9";

    // Publish, with the equivalent commands kept up to date while typing.
    await page.getByRole("link", { name: "Publish", exact: true }).click();
    await page.getByLabel("URL or URL group").fill(`${dest.base}/${key}/ok`);
    await page.getByLabel("Retries").fill("1");
    await page.getByLabel("Flow-control key").fill(`fc-${key}`);
    await page.getByLabel("Flow-control value").fill("parallelism=1");
    await page.getByLabel("Headers forwarded to the destination").fill("X-Order: 7");
    await page.getByLabel("Body").fill('{"from":"console"}');
    await hasText(page.locator("#curl"), `-H 'Upstash-Retries: 1'`);
    await hasText(page.locator("#curl"), `-H 'Upstash-Forward-X-Order: 7'`);
    await hasText(page.locator("#sdk"), "retries: 1");
    await page.getByRole("button", { name: "Publish", exact: true }).click();
    await hasText(page.getByRole("status"), "Published as msg_");
    const hits = await waitFor("the console's publish at the destination", () => {
      const h = dest.hits.filter((x) => x.key === key);
      return h.length ? h : undefined;
    }, 15_000);
    expect(hits[0].headers["x-order"]).toBe("7");
    expect(Buffer.from(hits[0].body, "base64").toString()).toBe('{"from":"console"}');

    // Queues: create, pause, resume.
    await page.getByRole("link", { name: "Queues", exact: true }).click();
    await page.getByLabel("Queue name").fill(`q-${key}`);
    await page.getByLabel("Parallelism").fill("3");
    await page.getByRole("button", { name: "Save queue" }).click();
    await hasText(page.getByRole("status"), "saved");
    const row = page.locator(`tr[data-queue="q-${key}"]`);
    await hasText(row, "3");
    await row.getByRole("button", { name: "Pause" }).click();
    await hasText(page.locator(`tr[data-queue="q-${key}"] .badge`), "paused");
    const q = (await (await fetch(`${server.url}/v2/queues/q-${key}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { paused: boolean; parallelism: number };
    expect(q).toMatchObject({ paused: true, parallelism: 3 });
    await page.locator(`tr[data-queue="q-${key}"]`).getByRole("button", { name: "Resume" }).click();
    await hasText(page.locator(`tr[data-queue="q-${key}"] .badge`), "active");

    // URL groups: add two endpoints, remove one.
    await page.getByRole("link", { name: "URL groups", exact: true }).click();
    for (const n of ["a", "b"]) {
      await page.getByLabel("URL group", { exact: true }).fill(`g-${key}`);
      await page.getByLabel("Endpoint URL").fill(`${dest.base}/${key}-${n}/ok`);
      await page.getByRole("button", { name: "Add endpoint" }).click();
      await hasText(page.getByRole("status"), "Endpoint added");
    }
    const group = page.locator(`[data-group="g-${key}"]`);
    await count(group.locator("tbody tr"), 2);
    await group.locator("tbody tr").filter({ hasText: `${key}-a/ok` }).getByRole("button", { name: "Remove" }).click();
    await hasText(page.getByRole("status"), "Endpoint removed");
    await count(page.locator(`[data-group="g-${key}"] tbody tr`), 1);

    // Flow control: the key the publish used; pause and resume it, pin its parallelism and unpin it.
    await page.getByRole("link", { name: "Flow control", exact: true }).click();
    const fc = page.locator(`tr[data-flow-key="fc-${key}"]`);
    await hasText(fc, "/ 1");
    await fc.getByRole("button", { name: "Pause" }).click();
    await hasText(page.locator(`tr[data-flow-key="fc-${key}"] .badge`), "paused");
    await page.locator(`tr[data-flow-key="fc-${key}"]`).getByRole("button", { name: "Resume" }).click();
    await hasText(page.locator(`tr[data-flow-key="fc-${key}"] .badge`), "active");
    await page.locator(`tr[data-flow-key="fc-${key}"]`).getByLabel("Pin parallelism").fill("5");
    await page.locator(`tr[data-flow-key="fc-${key}"]`).getByRole("button", { name: "Pin", exact: true }).click();
    await hasText(page.locator(`tr[data-flow-key="fc-${key}"]`), "pinned");
    await page.locator(`tr[data-flow-key="fc-${key}"]`).getByRole("button", { name: "Unpin" }).click();
    await hasText(page.getByRole("status"), "unpin done");

    // The overview counts the delivered message, in its state counts and in the deliveries per minute.
    await page.getByRole("link", { name: "Overview" }).click();
    expect(await page.locator("#chart-desc").textContent()).toMatch(/ [1-9]\d* delivered in the hour/);
    expect(await page.locator(".chart span").evaluateAll((bars) => bars.filter((b) => (b as HTMLElement).style.height !== "0%").length)).toBeGreaterThan(0);
    await hasText(page.locator("#day-counts"), "DELIVERED");

    // Signing keys: rotate from the overview.
    const before = await apiKeys(token);
    await page.getByRole("button", { name: "Rotate signing keys" }).click();
    await hasText(page.getByRole("status"), "Signing keys rotated");
    const after = await apiKeys(token);
    expect(after.current).toBe(before.next);
    await hasText(page.locator("dl.kv"), after.next);
    await context.close();
  });
});

describe("console pages", () => {
  const PAGES = ["/console", "/console/logs", "/console/dlq", "/console/schedules", "/console/schedules/new", "/console/workflows", "/console/queues", "/console/topics", "/console/flow-control", "/console/publish"];

  it("links a message and its callbacks both ways, and shows redacted fields as redacted", async () => {
    const key = uniqueKey("links");
    const res = await fetch(`${server.url}/v2/publish/${dest.base}/${key}/ok`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${USER1.token}`,
        "content-type": "text/plain",
        "upstash-callback": `${dest.base}/${key}-cb/ok`,
        "upstash-forward-authorization": "Bearer very-secret-value",
        "upstash-redact-fields": "body, header[Authorization]",
      },
      body: "a secret body",
    });
    const { messageId } = (await res.json()) as { messageId: string };
    const context = await browser.newContext();
    const page = await signInAsDev(context, "defaultUser");
    await waitFor("the callback message", async () => {
      await page.goto(`${server.url}/console/messages/${messageId}`);
      return (await page.locator("a[data-rel=callback]").count()) ? true : undefined;
    }, 20_000, 500);
    const html = await page.content();
    expect(html).not.toContain("very-secret-value");
    expect(html).not.toContain("a secret body");
    expect(await page.locator(".badge.redacted").count()).toBeGreaterThanOrEqual(2);
    await page.locator("a[data-rel=callback]").first().click();
    await hasText(page.locator("a[data-rel=source]"), messageId);
    await page.locator("a[data-rel=source]").click();
    expect(page.url()).toBe(`${server.url}/console/messages/${messageId}`);
    await context.close();
  });

  it("fits a 375 px wide screen and a desktop one, with every control labelled and text in enough contrast", async () => {
    for (const width of [375, 1280]) {
      const context = await browser.newContext({ viewport: { width, height: 800 } });
      const page = await signInAsDev(context, "defaultUser");
      for (const path of PAGES) {
        await page.goto(`${server.url}${path}`);
        const problems = await page.evaluate((w) => {
          const out: string[] = [];
          if (document.documentElement.scrollWidth > w + 1) out.push(`the page is ${document.documentElement.scrollWidth} px wide`);
          for (const el of Array.from(document.querySelectorAll("input, select, textarea, button"))) {
            const input = el as HTMLInputElement;
            if (input.type === "hidden") continue;
            const named = (input.labels && input.labels.length > 0) || input.getAttribute("aria-label") || input.getAttribute("aria-labelledby") || (el.tagName === "BUTTON" && el.textContent!.trim());
            if (!named) out.push(`unlabelled ${el.tagName.toLowerCase()} ${input.name ?? ""}`);
          }
          const rgb = (v: string) => (v.match(/[\d.]+/g) ?? []).map(Number);
          const lum = ([r, g, b]: number[]) =>
            [r, g, b].map((c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)).reduce((a, c, i) => a + c * [0.2126, 0.7152, 0.0722][i], 0);
          const background = (el: Element | null): number[] => {
            for (let e = el; e; e = e.parentElement) {
              const c = rgb(getComputedStyle(e).backgroundColor);
              if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
            }
            return [255, 255, 255];
          };
          for (const el of Array.from(document.querySelectorAll("body *"))) {
            const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent!.trim());
            const box = (el as HTMLElement).getBoundingClientRect();
            if (!own || box.width === 0 || box.height === 0) continue;
            const fg = lum(rgb(getComputedStyle(el).color));
            const bg = lum(background(el));
            const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
            if (ratio < 4.5) out.push(`contrast ${ratio.toFixed(2)} for "${el.textContent!.trim().slice(0, 30)}"`);
          }
          return out;
        }, width);
        expect(problems, `${path} at ${width} px`).toEqual([]);
      }
      await context.close();
    }
  });

  it("can be used with the keyboard alone: sign in, then reach the navigation", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/console/login`);
    await page.keyboard.press("Tab"); // the skip link
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("token");
    await page.keyboard.type(USER1.token);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${server.url}/console`);
    const reached: string[] = [];
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press("Tab");
      reached.push(await page.evaluate(() => document.activeElement?.textContent?.trim() ?? ""));
    }
    for (const label of ["Logs", "DLQ", "Schedules", "Publish"]) expect(reached).toContain(label);
    await context.close();
  });
});
