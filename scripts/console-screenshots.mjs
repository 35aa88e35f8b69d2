#!/usr/bin/env node
// Screenshots of the console's main pages for docs/console.md: starts Boomerang on a fresh state (scripts/dev.mjs),
// gives it something to show (delivered, failed and callback messages, a schedule, a queue, a URL group, a
// flow-control key), and captures each page in headless Chromium (Debian's package, through playwright-core).
//
// Usage: node scripts/console-screenshots.mjs [--out docs/console]

import http from "node:http";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { Bench, api, cliOptions, freePort, root, sleep, TOKEN } from "../bench/lib.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const opts = cliOptions({ options: { out: { value: "docs/console", help: "folder for the PNG files" } }, flags: { help: "show this help" } }, "console-screenshots.mjs");
const out = path.resolve(root, String(opts.out));
const bench = new Bench("screenshots", opts);
const agent = new http.Agent({ keepAlive: true });

/** A destination: /ok answers 200 with JSON, /fail answers 500. */
function destination() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const fail = req.url?.startsWith("/fail");
        res.writeHead(fail ? 500 : 200, { "content-type": "application/json" });
        res.end(JSON.stringify(fail ? { error: "inventory service unavailable" } : { ok: true, received: req.url }));
      });
    });
    srv.listen(0, "127.0.0.1", () => {
      bench.onCleanup(() => new Promise((done) => srv.close(() => done())));
      resolve(`http://127.0.0.1:${srv.address().port}`);
    });
  });
}

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  mkdirSync(out, { recursive: true });
  let browser;
  bench.onCleanup(async () => browser?.close().catch(() => {}));
  await bench.finish(
    { name: "screenshots" },
    async () => {
      const snap = bench.snapshotSources();
      const dest = await destination();
      const server = await bench.startBoomerang({ appDir: snap.appDir, persistDir: path.join(bench.workDir, "state"), port: await freePort() });
      const publish = (p, headers, body) => api(server.base, agent, "POST", `/v2/publish/${dest}${p}`, { headers, body });
      bench.log("publishing sample messages …");
      for (let i = 1; i <= 12; i++) {
        await publish(`/orders/${i}`, { "content-type": "application/json", "upstash-label": "orders", "upstash-callback": `${dest}/callbacks/order` }, JSON.stringify({ order: i, total: 10 * i }));
      }
      const failed = await publish("/fail/inventory", { "content-type": "application/json", "upstash-retries": "0", "upstash-label": "inventory", "upstash-failure-callback": `${dest}/callbacks/failed` }, JSON.stringify({ sku: "A-100", quantity: 3 }));
      await publish("/reports", { "upstash-flow-control-key": "reports", "upstash-flow-control-value": "parallelism=2, rate=10" }, "nightly");
      await api(server.base, agent, "POST", `/v2/schedules/${dest}/reports`, { headers: { "upstash-cron": "CRON_TZ=Europe/Berlin 30 9 * * 1-5", "upstash-schedule-id": "weekday-report" }, body: "{}" });
      await api(server.base, agent, "POST", "/v2/queues", { headers: { "content-type": "application/json" }, body: JSON.stringify({ queueName: "emails", parallelism: 2 }) });
      await api(server.base, agent, "POST", "/v2/topics/webhooks/endpoints", { headers: { "content-type": "application/json" }, body: JSON.stringify({ endpoints: [{ url: `${dest}/hooks/a`, name: "billing" }, { url: `${dest}/hooks/b`, name: "audit" }] }) });
      await sleep(3000);
      const dlq = await api(server.base, agent, "GET", "/v2/dlq");

      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-sync", "--disable-component-update"] });
      const shots = [
        ["login", "/console/login", 1280, false],
        ["overview", "/console", 1280, true],
        ["logs", "/console/logs", 1280, true],
        ["message", `/console/messages/${failed.messageId}`, 1280, true],
        ["dlq", "/console/dlq", 1280, true],
        ["dlq-entry", `/console/dlq/${dlq.messages[0]?.dlqId}`, 1280, true],
        ["schedules", "/console/schedules", 1280, true],
        ["schedule-new", "/console/schedules/new", 1280, true],
        ["queues", "/console/queues", 1280, true],
        ["flow-control", "/console/flow-control", 1280, true],
        ["publish", "/console/publish", 1280, true],
        ["logs-375", "/console/logs", 375, true],
      ];
      for (const [name, p, width, signedIn] of shots) {
        const context = await browser.newContext({ viewport: { width, height: 900 }, deviceScaleFactor: 1 });
        if (signedIn) {
          await context.addCookies([{ name: "boomerang_session", value: encodeURIComponent(TOKEN), domain: "127.0.0.1", path: "/console", httpOnly: true, sameSite: "Strict" }]);
        }
        const page = await context.newPage();
        await page.goto(server.base + p, { waitUntil: "networkidle" });
        if (name === "schedule-new") {
          await page.fill("#cron", "*/15 9-17 * * 1-5");
          await page.fill("#f-destination", `${dest}/reports`);
          await page.waitForSelector("#cron-preview li");
        }
        if (name === "publish") {
          await page.fill("#f-destination", "https://example.com/api/orders");
          await page.fill("#f-retries", "5");
          await page.fill("#f-body", '{"order": 42}');
          await page.dispatchEvent("#f-body", "input");
        }
        await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: name !== "logs-375" });
        bench.log(`${name}.png`);
        await context.close();
      }
    },
  );
}

await main();
