#!/usr/bin/env node
// How fast do the console's pages load with 100,000 messages stored?
//
// 1. Seeds a fresh local state with --messages finished messages of the dev tenant (each one row with its log of 3
//    entries), created over the last 23 hours, so the overview's hour and day both count real rows.
// 2. Starts Boomerang on it (scripts/dev.mjs on a snapshot of the sources) and a local destination, and publishes a
//    few live messages (one to a failing path, so the DLQ and a message page have something to show).
// 3. For each page, in rounds (the page order rotates each round): the server's answer time over HTTP with the
//    session cookie, and the whole load in headless Chromium (playwright-core, navigation start to the load event,
//    stylesheet and script included). The baseline in the same rounds: GET /v2/keys, the lightest API call.
//    The browser's baseline: the sign-in page, which reads nothing (what Chromium itself takes for a page here).
// 4. Reports median and p90 per page and the ratios to the baselines. Goal: every page is answered in under
//    200 ms (server p90); the browser's whole load is reported next to it.
//
// Writes bench/results/console-<date>.json. Usage: node bench/console.mjs [--messages 100000] [--runs 5] [--help]

import http from "node:http";
import path from "node:path";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { Bench, api, cliOptions, fmt, freePort, gitCommit, httpRequest, machineInfo, markdownTable, median, now, percentile, ratio, startDestination, TOKEN } from "./lib.mjs";

const GOAL_MS = 200;
const TENANT = "dev-default";
const WINDOW_MS = 23 * 3600_000;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const SPEC = {
  options: {
    messages: { value: 100_000, min: 0, max: 5_000_000, help: "finished messages stored before measuring" },
    runs: { value: 5, min: 1, max: 50, help: "rounds; each loads every page once over HTTP (x4) and once in the browser" },
    chunk: { value: 250_000, min: 1000, max: 5_000_000, help: "messages per wrangler d1 execute while seeding" },
  },
  flags: {
    "keep-state": "keep the .wrangler/bench-* work directory afterwards",
    help: "show this help",
  },
};
const opts = cliOptions(SPEC, "console.mjs");
const bench = new Bench("console", opts);
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const cookie = `boomerang_session=${encodeURIComponent(TOKEN)}`;

const p90 = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return sorted.length ? percentile(sorted, 0.9) : null;
};

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  const result = {
    name: "console",
    startedAt: new Date(bench.startedAt).toISOString(),
    complete: false,
    error: null,
    machine: machineInfo(),
    options: opts,
    goal: { ms: GOAL_MS },
    source: { commit: gitCommit() },
    pages: [],
    markdown: null,
  };
  let browser;
  bench.onCleanup(async () => {
    await browser?.close().catch(() => {});
  });
  await bench.finish(
    result,
    async () => {
      const snap = bench.snapshotSources();
      const persistDir = path.join(bench.workDir, "state");
      const t0 = now() - WINDOW_MS;
      const stepMs = Math.max(1, Math.floor(WINDOW_MS / Math.max(1, opts.messages)));
      if (opts.messages > 0) await bench.seedFinished({ appDir: snap.appDir, persistDir, size: opts.messages, chunk: opts.chunk, tenant: TENANT, t0, stepMs, label: "state" });
      const dest = await startDestination(bench, () => {});
      const server = await bench.startBoomerang({ appDir: snap.appDir, persistDir, port: await freePort(), label: "Boomerang" });
      const auth = { authorization: `Bearer ${TOKEN}` };
      const ok = await api(server.base, agent, "POST", `/v2/publish/${dest.base}/ok`, { headers: { "content-type": "application/json" }, body: '{"live":true}' });
      // Port 9 (discard) refuses the connection: with no retries, the message fails at once and lands in the DLQ.
      const failing = await api(server.base, agent, "POST", "/v2/publish/http://127.0.0.1:9/fail", { headers: { "upstash-retries": "0" }, body: "x" });
      const messageId = ok.messageId;
      bench.log(`published ${messageId} and ${failing.messageId}; waiting 3 s for their attempts`);
      await new Promise((r) => setTimeout(r, 3000));
      const pages = [
        ["overview", "/console"],
        ["overview: 24 h counts (fetched after load)", "/console/overview/day"],
        ["logs", "/console/logs"],
        ["logs, state FAILED", "/console/logs?state=FAILED"],
        ["logs, URL matching nothing", "/console/logs?url=http%3A%2F%2Fnowhere.invalid%2F"],
        ["message", `/console/messages/${messageId}`],
        ["DLQ", "/console/dlq"],
        ["schedules", "/console/schedules"],
        ["queues", "/console/queues"],
        ["publish form", "/console/publish"],
      ];
      const samples = new Map(pages.map(([name]) => [name, { http: [], browser: [] }]));
      const baseline = [];
      const browserBaseline = [];
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-sync", "--disable-component-update"] });
      const context = await browser.newContext();
      const host = new URL(server.base).hostname;
      await context.addCookies([{ name: "boomerang_session", value: encodeURIComponent(TOKEN), domain: host, path: "/console", httpOnly: true, sameSite: "Strict" }]);
      const page = await context.newPage();
      // Warm-up (not counted): every page once.
      for (const [, p] of pages) {
        const r = await httpRequest({ url: server.base + p, headers: { cookie }, agent });
        if (r.status !== 200) throw new Error(`GET ${p} answered ${r.status}: ${r.body.slice(0, 300)}`);
        await page.goto(server.base + p);
      }
      for (let round = 1; round <= opts.runs; round++) {
        const order = pages.map((_, i) => pages[(i + round) % pages.length]);
        for (const [name, p] of order) {
          for (let i = 0; i < 4; i++) {
            const b = await httpRequest({ url: `${server.base}/v2/keys`, headers: auth, agent });
            baseline.push(b.ms);
            const r = await httpRequest({ url: server.base + p, headers: { cookie }, agent });
            if (r.status !== 200) throw new Error(`GET ${p} answered ${r.status}`);
            samples.get(name).http.push(r.ms);
          }
          await page.goto(server.base + p, { waitUntil: "load" });
          const load = await page.evaluate(() => {
            const nav = performance.getEntriesByType("navigation")[0];
            return nav.loadEventEnd - nav.startTime;
          });
          samples.get(name).browser.push(load);
        }
        await page.goto(`${server.base}/console/login`, { waitUntil: "load" });
        browserBaseline.push(await page.evaluate(() => {
          const nav = performance.getEntriesByType("navigation")[0];
          return nav.loadEventEnd - nav.startTime;
        }));
        bench.log(`round ${round}/${opts.runs} done`);
      }
      const base = median(baseline);
      result.baseline = { name: "GET /v2/keys", median: base, p90: p90(baseline) };
      const browserBase = median(browserBaseline);
      result.browserBaseline = { name: "the sign-in page in Chromium", median: browserBase, p90: p90(browserBaseline) };
      for (const [name, p] of pages) {
        const s = samples.get(name);
        result.pages.push({ name, path: p, httpMedian: median(s.http), httpP90: p90(s.http), browserMedian: median(s.browser), browserP90: p90(s.browser), samples: s });
      }
      const rows = result.pages.map((r) => [
        r.name,
        fmt(r.httpMedian, 1),
        fmt(r.httpP90, 1),
        fmt(ratio(r.httpMedian, base), 1),
        fmt(r.browserMedian, 1),
        fmt(r.browserP90, 1),
        fmt(ratio(r.browserMedian, browserBase), 1),
        (r.httpP90 ?? Infinity) < GOAL_MS ? "met" : "missed",
      ]);
      result.markdown = [
        `${fmt(opts.messages)} stored messages; ${opts.runs} rounds. Baselines: GET /v2/keys median ${fmt(base, 1)} ms (p90 ${fmt(p90(baseline), 1)} ms); ` +
          `the sign-in page in Chromium median ${fmt(browserBase, 1)} ms (p90 ${fmt(p90(browserBaseline), 1)} ms).`,
        "",
        markdownTable(["page", "server median ms", "server p90 ms", "÷ API baseline", "browser load median ms", "browser load p90 ms", "÷ browser baseline", `server p90 < ${GOAL_MS} ms`], rows),
      ].join("\n");
    },
    () => {
      if (result.markdown) console.log(`\n${result.markdown}\n`);
    },
  );
}

await main();
