#!/usr/bin/env node
// An order pipeline as an Upstash Workflow, run against Boomerang: `npm run dev` in one terminal, then
// `npm run example:workflow` in another. See README.md next to this file.
//
// The workflow: reserve stock (a step), charge the card through a slow payment service (context.call: the call runs
// in Boomerang, longer than the step's own request), let a cooling-off period pass (context.sleep), wait for the
// bank's confirmation (context.waitForEvent, which this script sends a few seconds later with client.notify), ship.

import http from "node:http";
import { Client as QStashClient, Receiver } from "@upstash/qstash";
import { Client as WorkflowClient, serve } from "@upstash/workflow";

// With QSTASH_DEV=true the SDK finds a local server by itself: the dev credentials on 127.0.0.1, port QSTASH_DEV_PORT
// (8080 by default), which is what `npm run dev` serves. Otherwise QSTASH_URL and QSTASH_TOKEN say where to go.
const DEV = ["true", "1"].includes(process.env.QSTASH_DEV ?? "");
const QSTASH_URL = DEV ? `http://127.0.0.1:${process.env.QSTASH_DEV_PORT ?? 8080}` : (process.env.QSTASH_URL ?? "http://127.0.0.1:8080");
// The dev tenant's public credentials (what `npm run dev` prints).
const QSTASH_TOKEN = process.env.QSTASH_TOKEN ?? "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=";
const CURRENT_KEY = process.env.QSTASH_CURRENT_SIGNING_KEY ?? "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r";
const NEXT_KEY = process.env.QSTASH_NEXT_SIGNING_KEY ?? "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs";
const PORT = Number(process.env.EXAMPLE_PORT ?? 3030);
const BASE = `http://127.0.0.1:${PORT}`;
const log = (msg) => console.log(`[example ${new Date().toISOString().slice(11, 19)}] ${msg}`);

const { handler } = serve(
  async (context) => {
    const order = context.requestPayload;
    const reservation = await context.run("reserve stock", () => {
      log(`step "reserve stock" for order ${order.id}`);
      return { reservationId: `res-${order.id}`, items: order.items.length };
    });
    const charge = await context.call("charge card", {
      url: `${BASE}/payment-service`,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ orderId: order.id, amount: order.total }),
      retries: 2,
    });
    await context.sleep("cooling-off period", 2);
    const confirmation = await context.waitForEvent("bank confirmation", `payment-${order.id}`, { timeout: "60s" });
    if (confirmation.timeout) {
      log("no confirmation from the bank in 60 s: releasing the stock");
      await context.run("release stock", () => ({ released: reservation.reservationId }));
      return { status: "cancelled", reason: "no bank confirmation" };
    }
    const shipment = await context.run("ship", () => {
      log(`step "ship" for order ${order.id} (the card was charged: HTTP ${charge.status}, ${JSON.stringify(charge.body)})`);
      return { trackingNumber: `TRK-${order.id}-${Date.now() % 100000}` };
    });
    return { status: "shipped", charge: charge.body, confirmation: confirmation.eventData, ...shipment };
  },
  DEV
    ? { url: `${BASE}/order-pipeline` }
    : {
        qstashClient: new QStashClient({ baseUrl: QSTASH_URL, token: QSTASH_TOKEN }),
        receiver: new Receiver({ currentSigningKey: CURRENT_KEY, nextSigningKey: NEXT_KEY }),
        url: `${BASE}/order-pipeline`,
      },
);

const app = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  if (req.url === "/payment-service") {
    // A slow payment provider: it takes 3 s to answer.
    log("payment service: charging (3 s) …");
    await new Promise((r) => setTimeout(r, 3000));
    const { amount } = JSON.parse(body.toString() || "{}");
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ charged: amount, currency: "EUR" }));
    return;
  }
  if (req.url?.startsWith("/order-pipeline")) {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
    const response = await handler(new Request(`${BASE}${req.url}`, { method: req.method, headers, body: body.length ? body : undefined }));
    const out = {};
    response.headers.forEach((v, k) => (out[k] = v));
    res.writeHead(response.status, out).end(Buffer.from(await response.arrayBuffer()));
    return;
  }
  res.writeHead(404).end();
});

async function main() {
  try {
    await fetch(`${QSTASH_URL}/`, { signal: AbortSignal.timeout(3000) });
  } catch {
    console.error(`[example] Boomerang does not answer at ${QSTASH_URL}. Start it first with \`npm run dev\` (or set QSTASH_URL).`);
    process.exit(1);
  }
  await new Promise((resolve, reject) => app.once("error", reject).listen(PORT, "127.0.0.1", resolve)).catch((err) => {
    console.error(`[example] cannot listen on 127.0.0.1:${PORT} (${err.code}); set EXAMPLE_PORT to a free port`);
    process.exit(1);
  });
  log(`workflow endpoint on ${BASE}/order-pipeline, Boomerang at ${QSTASH_URL}${DEV ? " (QSTASH_DEV)" : ""}`);
  const client = DEV ? new WorkflowClient() : new WorkflowClient({ baseUrl: QSTASH_URL, token: QSTASH_TOKEN });
  const order = { id: `ord-${Date.now() % 100000}`, items: ["keyboard", "mouse"], total: 89.9 };
  const { workflowRunId } = await client.trigger({ url: `${BASE}/order-pipeline`, body: order });
  log(`triggered run ${workflowRunId} for order ${order.id}; console: ${QSTASH_URL}/console/workflows/${workflowRunId}`);
  // The bank confirms a few seconds later.
  setTimeout(async () => {
    const waiting = await client.getWaiters({ eventId: `payment-${order.id}` });
    log(`the bank confirms the payment (${waiting.length} run(s) waiting for it)`);
    await client.notify({ eventId: `payment-${order.id}`, eventData: { confirmed: true, bankRef: "BNK-1234" } });
  }, 9000);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { runs } = await client.logs({ workflowRunId });
    const run = runs[0];
    if (run && run.workflowState !== "RUN_STARTED") {
      log(`run ended: ${run.workflowState}`);
      log(`steps: ${run.steps.flatMap((g) => g.steps.map((s) => s.stepName)).join(" → ")}`);
      log(`result: ${run.workflowRunResponse}`);
      app.close();
      process.exit(run.workflowState === "RUN_SUCCESS" ? 0 : 1);
    }
    if (Date.now() > deadline) {
      console.error("[example] the run did not end within 2 minutes; is `npm run dev` still running?");
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

await main();
