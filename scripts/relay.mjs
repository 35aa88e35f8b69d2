#!/usr/bin/env node
// The attempt relay of `npm start`: a Node process that makes the outgoing calls of delivery attempts for the worker
// (src/delivery/relay.ts has the worker's side and the protocol).
//
// Locally, workerd runs the worker, D1, the queue broker and the Durable Objects on one thread, and an outgoing call
// costs that thread more than the rest of a delivery. A relay takes the calls off it. It is written for Node's `http`
// client because that is the cheapest one measured on the test machine: about 0.13 ms of CPU per call, against 0.33
// for workerd's `fetch` and 0.8 for Node's own `fetch` (docs/architecture.md, "Serving modes").
//
// One request carries a batch of calls, one JSON line each (`{url, method, headers, body (base64), timeoutMs,
// limit}`); the answer streams back one line per call as it comes (`{i, status, headers, body, truncated}` or
// `{i, failed, timedOut}`). The relay does what workerd's `fetch` does for the worker: it follows no redirect,
// decodes a gzip or brotli body (not deflate, which workerd passes on as it came), and reports the answer's headers as
// pairs, which the worker folds as its own `Headers` would. Each call keeps its own time limit and the cap on how much
// of the answer is read (test/worker/relay.test.ts compares the two).
//
// Run as a child of `npm start`: the secret comes in BOOMERANG_RELAY_SECRET, the listening address goes back over
// the IPC channel, and the relay exits when its parent goes away.
import { fork } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

/** The header that carries the relay's secret: RELAY_SECRET_HEADER in src/delivery/relay.ts (test/worker/relay.test.ts fails if they differ). */
const SECRET_HEADER = "x-boomerang-relay-secret";

const agents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 256 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 256 }),
};

/** A decoder for a body sent with `encoding`, as workerd's `fetch` decodes it; null when it is passed on as it came. */
function decoder(encoding) {
  switch (String(encoding ?? "").trim().toLowerCase()) {
    case "gzip":
      return zlib.createGunzip({ finishFlush: zlib.constants.Z_SYNC_FLUSH });
    case "br":
      return zlib.createBrotliDecompress();
    default:
      return null;
  }
}

/** Makes one call; resolves with its wire answer (without `i`). Never rejects. */
function makeCall(call) {
  return new Promise((resolve) => {
    let settled = false;
    let timedOut = false;
    let req;
    const finish = (answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const failed = (err) => finish({ failed: err instanceof Error ? err.message : String(err), timedOut });
    const timer = setTimeout(() => {
      timedOut = true;
      failed(new Error(`the call was aborted after ${call.timeoutMs} ms`));
      req?.destroy();
    }, call.timeoutMs);
    let url;
    try {
      url = new URL(call.url);
      if (!agents[url.protocol]) throw new Error(`the relay makes http and https calls, not ${url.protocol}`);
    } catch (err) {
      failed(err);
      return;
    }
    const body = call.body === null ? null : Buffer.from(call.body, "base64");
    // Given as an array, the headers go out as they are: Host and the body's length are added here.
    const headers = ["host", url.host, ...call.headers.flat()];
    if (body !== null) headers.push("content-length", String(body.length));
    req = (url.protocol === "https:" ? https : http).request(url, { method: call.method, headers, agent: agents[url.protocol] }, (res) => {
      const pairs = [];
      for (let k = 0; k < res.rawHeaders.length; k += 2) pairs.push([res.rawHeaders[k], res.rawHeaders[k + 1]]);
      const decode = call.method === "HEAD" ? null : decoder(res.headers["content-encoding"]);
      const stream = decode ? res.pipe(decode) : res;
      if (decode) res.on("error", (err) => decode.destroy(err));
      const chunks = [];
      let size = 0;
      let truncated = false;
      stream.on("data", (chunk) => {
        if (truncated) return;
        if (size + chunk.length > call.limit) {
          chunks.push(chunk.subarray(0, call.limit - size));
          size = call.limit;
          truncated = true;
          res.destroy();
          if (decode) decode.destroy();
          done();
          return;
        }
        chunks.push(chunk);
        size += chunk.length;
      });
      const done = () => finish({ status: res.statusCode, headers: pairs, body: Buffer.concat(chunks, size).toString("base64"), truncated });
      stream.on("end", done);
      stream.on("error", (err) => (truncated ? undefined : failed(err)));
    });
    req.on("error", failed);
    req.end(body ?? undefined);
  });
}

/** Answers one relay request: checks the secret, makes its calls at once and streams back each answer. */
function answer(req, res, secret) {
  const refuse = (status, error) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ error }));
  };
  if (!secret || req.headers[SECRET_HEADER] !== secret) {
    req.resume();
    return refuse(403, "this is the attempt relay of a local Boomerang; it only serves the worker that started it");
  }
  if (req.method !== "POST") {
    req.resume();
    return refuse(405, "the relay takes POST requests");
  }
  // The worker may give up on a relay request (its time limit): answers written after that go nowhere.
  res.on("error", () => undefined);
  req.on("error", () => undefined);
  const parts = [];
  req.on("data", (c) => parts.push(c));
  req.on("end", () => {
    let calls;
    try {
      calls = Buffer.concat(parts)
        .toString("utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line));
    } catch (err) {
      return refuse(400, `the relay request is not one JSON call per line: ${String(err)}`);
    }
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    // Answers that come in the same turn of the event loop go out as one chunk, which the worker reads in one go:
    // their outcomes then share group commits. The last one goes out at once.
    let ready = [];
    let left = calls.length;
    let pending = null;
    const write = () => {
      if (pending !== null) clearImmediate(pending);
      pending = null;
      if (ready.length) res.write(ready.join(""));
      ready = [];
    };
    if (left === 0) return res.end();
    calls.forEach((call, i) => {
      void makeCall(call).then((wire) => {
        ready.push(`${JSON.stringify({ i, ...wire })}\n`);
        left -= 1;
        if (left > 0) {
          pending ??= setImmediate(write);
          return;
        }
        write();
        res.end();
      });
    });
  });
}

/** Serves the relay on `host`:`port` (0: a free one); resolves with the server and its `host:port`. */
export function serveRelay({ secret, host = "127.0.0.1", port = 0 }) {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => answer(req, res, secret));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve({ server, address: `${host}:${server.address().port}` }));
  });
}

/**
 * Starts the relay as a child process of this one, with `secret`; it exits when this process goes away. Resolves
 * with the child and the relay's `host:port`.
 */
export function forkRelay(secret) {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, BOOMERANG_RELAY_SECRET: secret },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    child.once("message", (m) => resolve({ child, address: m.address }));
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`it exited with code ${code}`)));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const secret = process.env.BOOMERANG_RELAY_SECRET;
  if (!secret) {
    console.error("[boomerang] the relay needs its secret in BOOMERANG_RELAY_SECRET; `npm start` starts it");
    process.exit(1);
  }
  const { address } = await serveRelay({ secret });
  if (process.send) {
    process.send({ address });
    // Gone with the server that started it.
    process.on("disconnect", () => process.exit(0));
  } else {
    console.log(`[boomerang] attempt relay on ${address}`);
  }
}
