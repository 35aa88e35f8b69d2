#!/usr/bin/env node
// The long-running-function pattern with Boomerang callbacks.
//
// Your app publishes a job and returns at once. Boomerang calls the slow function, waits as long as the
// function takes (up to Upstash-Timeout), and then posts the function's response to your callback URL.
// If the function keeps failing, Boomerang also posts one failure callback with the id of the DLQ entry.
//
// This script plays all three parts on 127.0.0.1:
//   - a "slow function" server (the work),
//   - a "callback receiver" server (where results arrive),
//   - the publisher (the official @upstash/qstash Client).
// Every request the two servers receive is verified with the official Receiver, on the raw body.
//
// Run a Boomerang dev server first (`npm run dev`), then: node examples/callbacks/run.mjs
// Environment: QSTASH_URL (default http://127.0.0.1:8080), QSTASH_TOKEN, QSTASH_CURRENT_SIGNING_KEY and
// QSTASH_NEXT_SIGNING_KEY (default: the public dev credentials that `npm run dev` prints).
import http from "node:http";
import { Client, Receiver } from "@upstash/qstash";

const DEV = {
  token: "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=",
  current: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
  next: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
};
const baseUrl = process.env.QSTASH_URL || "http://127.0.0.1:8080";
const token = process.env.QSTASH_TOKEN || DEV.token;
const receiver = new Receiver({
  currentSigningKey: process.env.QSTASH_CURRENT_SIGNING_KEY || DEV.current,
  nextSigningKey: process.env.QSTASH_NEXT_SIGNING_KEY || DEV.next,
});
const client = new Client({ baseUrl, token });

const WORK_MS = 1500; // how long the "slow function" works before it answers
const DEADLINE_MS = 30_000; // give up if the expected callbacks have not all arrived by then

const log = (who, msg) => console.log(`[${who}] ${msg}`);

/** The whole request body as a string, exactly as received: the signature covers these bytes. */
function rawBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/**
 * Verifies the Upstash-Signature of a request against the URL it was sent to and its raw body.
 * Never verify a parsed and re-serialised body: one changed byte and the hash no longer matches.
 */
async function verified(req, body, url) {
  try {
    await receiver.verify({ signature: req.headers["upstash-signature"] ?? "", body, url });
    return true;
  } catch (err) {
    log("verify", `REJECTED ${req.method} ${url}: ${err.message}`);
    return false;
  }
}

/** Starts a server on a free port of 127.0.0.1 and returns it with its base URL. */
async function listen(handler) {
  const server = http.createServer((req, res) => {
    handler(req, res).catch((err) => {
      console.error(err);
      res.writeHead(500).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, base: `http://127.0.0.1:${server.address().port}` };
}

const reply = (res, status, json) => {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(json));
};

// ---------------------------------------------------------------------------------------------------------
// The slow function: /thumbnail/<name> works for a while and answers 200; /broken/<name> answers 503 at once.

let rejected = 0;
const fn = await listen(async (req, res) => {
  const body = await rawBody(req);
  const url = `${fn.base}${req.url}`;
  if (!(await verified(req, body, url))) {
    rejected++;
    return reply(res, 401, { error: "bad signature" });
  }
  const attempt = req.headers["upstash-retried"];
  log("function", `${req.method} ${req.url} (message ${req.headers["upstash-message-id"]}, Upstash-Retried ${attempt})`);
  if (req.url.startsWith("/broken/")) return reply(res, 503, { error: "the image service is down" });
  await new Promise((r) => setTimeout(r, WORK_MS));
  const job = JSON.parse(body);
  reply(res, 200, { thumbnail: `${job.image}.thumb.png`, tookMs: WORK_MS });
});

// ---------------------------------------------------------------------------------------------------------
// The callback receiver: /callback after every attempt, /failure once when retries are exhausted.

const received = [];
const cb = await listen(async (req, res) => {
  const body = await rawBody(req);
  const url = `${cb.base}${req.url}`;
  if (!(await verified(req, body, url))) {
    rejected++;
    return reply(res, 401, { error: "bad signature" });
  }
  const payload = JSON.parse(body);
  const kind = req.url.startsWith("/failure") ? "failure callback" : "callback";
  received.push({ kind, payload, job: req.headers["x-job"] });
  // `body` and `sourceBody` are standard base64; decode them to read what the function answered and what was sent.
  const decoded = {
    ...payload,
    body: Buffer.from(payload.body, "base64").toString("utf8"),
    sourceBody: Buffer.from(payload.sourceBody, "base64").toString("utf8"),
  };
  log(kind, `for job ${req.headers["x-job"]} (callback message ${req.headers["upstash-message-id"]}):`);
  for (const [key, value] of Object.entries(decoded)) console.log(`    ${key}: ${JSON.stringify(value)}`);
  // Answer 2xx, or Boomerang retries the callback message like any other message.
  reply(res, 200, { ok: true });
});

// ---------------------------------------------------------------------------------------------------------
// The publisher.

log("example", `Boomerang at ${baseUrl}; function at ${fn.base}; callbacks to ${cb.base}`);

let exitCode = 1;
let okId;
let brokenId;
try {
  // 1. A job that succeeds: one callback, with the function's response in `body`.
  ({ messageId: okId } = await client.publishJSON({
    url: `${fn.base}/thumbnail/cat`,
    body: { image: "cat.jpg" },
    timeout: "30s", // how long one attempt may take
    callback: `${cb.base}/callback`,
    failureCallback: `${cb.base}/failure`,
    headers: {
      // Configuration of the callback messages themselves (the SDK passes Upstash-* headers through as they are).
      "Upstash-Callback-Forward-X-Job": "thumbnail-cat",
      "Upstash-Failure-Callback-Forward-X-Job": "thumbnail-cat",
      "Upstash-Callback-Retries": "5",
    },
  }));
  log("example", `published the working job as ${okId}`);

  // 2. A job that fails: retries 1 means two attempts, so two callbacks, then one failure callback with a dlqId.
  ({ messageId: brokenId } = await client.publishJSON({
    url: `${fn.base}/broken/dog`,
    body: { image: "dog.jpg" },
    retries: 1,
    retryDelay: "500", // ms before the retry (an expression over `retried`)
    callback: `${cb.base}/callback`,
    failureCallback: `${cb.base}/failure`,
    headers: {
      "Upstash-Callback-Forward-X-Job": "thumbnail-dog",
      "Upstash-Failure-Callback-Forward-X-Job": "thumbnail-dog",
    },
  }));
  log("example", `published the failing job as ${brokenId}`);

  // 1 callback for the working job + 2 callbacks and 1 failure callback for the failing one.
  const deadline = Date.now() + DEADLINE_MS;
  while (received.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // A moment more, so that an unexpected extra callback would be noticed.
  await new Promise((r) => setTimeout(r, 500));

  const of = (id, kind) => received.filter((r) => r.payload.sourceMessageId === id && r.kind === kind);
  const checks = [
    ["working job: exactly one callback, status 200", of(okId, "callback").length === 1 && of(okId, "callback")[0].payload.status === 200],
    ["working job: no failure callback", of(okId, "failure callback").length === 0],
    ["failing job: one callback per attempt (retried 0 and 1)",
      of(brokenId, "callback").map((r) => r.payload.retried).sort().join() === "0,1"],
    ["failing job: one failure callback with a dlqId", of(brokenId, "failure callback").length === 1 &&
      typeof of(brokenId, "failure callback")[0].payload.dlqId === "string"],
    ["forwarded X-Job header on every callback", received.every((r) => r.job?.startsWith("thumbnail-"))],
    ["every request verified", rejected === 0],
  ];
  console.log("");
  for (const [what, ok] of checks) log("check", `${ok ? "ok  " : "FAIL"} ${what}`);
  exitCode = checks.every(([, ok]) => ok) ? 0 : 1;

  // The failed job's DLQ entry is not needed any more: the failure callback's dlqId addresses it directly.
  const failure = of(brokenId, "failure callback")[0];
  if (failure) {
    await client.dlq.delete(failure.payload.dlqId);
    log("example", `deleted DLQ entry ${failure.payload.dlqId}`);
  }
} catch (err) {
  console.error(`[example] ${err.message}`);
  if (/fetch failed|ECONNREFUSED/i.test(String(err.message) + String(err.cause))) {
    console.error(`[example] is Boomerang running at ${baseUrl}? Start it with \`npm run dev\`, or set QSTASH_URL.`);
  }
} finally {
  fn.server.close();
  cb.server.close();
}
process.exit(exitCode);
