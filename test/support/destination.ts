/**
 * A real HTTP destination on 127.0.0.1 for tests. Paths start with a key that groups the hits of one test:
 *   /<key>/ok                       200 "ok"
 *   /<key>/status/<code>            that status, body "status <code>"
 *   /<key>/flaky/<n>                500 for the first n hits of this key, then 200
 *   /<key>/sleep/<ms>               waits, then 200
 *   /<key>/sleep-fail/<ms>          waits, then 500
 *   /<key>/retry-after/<value>      503 with Retry-After: <value> on the first hit, then 200
 *   /<key>/nonretryable             489 with Upstash-NonRetryable-Error: true
 *   /<key>/drop                     closes the connection without answering
 *   /<key>/big/<bytes>              200 with a body of that many bytes ("a")
 *   /<key>/big-fail/<bytes>         500 with a body of that many bytes ("b")
 *   /<key>/binary                   200 with a non-UTF-8 body and a custom header
 *   /<key>/redirect/<url>           302 with Location: <url> (percent-decoded)
 *   /<key>/encoded/<coding>         200, body "compressed hello" in gzip, deflate or br, with two Set-Cookie and two
 *                                   X-Multi headers
 * Control: GET /__hits/<key> lists every request received for the key (body base64; a body over 32 MiB is kept
 * only as its size and SHA-256, to spare memory).
 */
import { createHash } from "node:crypto";
import http from "node:http";
import zlib from "node:zlib";

/** Bodies above this size are recorded as size and hash only. */
const KEEP_BODY_MAX = 32 * 1024 * 1024;
import type { AddressInfo } from "node:net";

export interface Hit {
  key: string;
  method: string;
  path: string;
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Bytes received, and their SHA-256 (hex). */
  size: number;
  sha256: string;
  time: number;
  endTime?: number;
  /** The caller's TCP port (which process called: see socketOwner in test/e2e/helpers.ts). */
  remotePort?: number;
}

export interface Destination {
  port: number;
  base: string;
  hits: Hit[];
  close(): Promise<void>;
}

export async function startDestination(port = 0): Promise<Destination> {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const parts = url.pathname.split("/").filter(Boolean);
      if (parts[0] === "__hits") {
        const key = decodeURIComponent(parts[1] ?? "");
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(hits.filter((h) => h.key === key)));
        return;
      }
      const [key = "", action = "ok", arg = ""] = parts;
      const received = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : (v ?? "");
      const hit: Hit = {
        key,
        method: req.method ?? "",
        path: url.pathname,
        url: req.url ?? "",
        headers,
        body: received.length > KEEP_BODY_MAX ? "" : received.toString("base64"),
        size: received.length,
        sha256: createHash("sha256").update(received).digest("hex"),
        time: Date.now(),
        remotePort: req.socket.remotePort,
      };
      hits.push(hit);
      const seen = hits.filter((h) => h.key === key).length;
      const done = (status: number, body: string | Buffer, extra: Record<string, string | string[]> = {}) => {
        hit.endTime = Date.now();
        res.writeHead(status, { "content-type": "text/plain", ...extra });
        res.end(body);
      };
      switch (action) {
        case "status":
          return done(Number(arg), `status ${arg}`);
        case "flaky":
          return seen <= Number(arg) ? done(500, "not yet") : done(200, "finally");
        case "sleep":
          return void setTimeout(() => done(200, "slept"), Number(arg));
        case "sleep-fail":
          return void setTimeout(() => done(500, "slept, then failed"), Number(arg));
        case "retry-after":
          return seen === 1 ? done(503, "later", { "retry-after": decodeURIComponent(arg) }) : done(200, "ok");
        case "nonretryable":
          return done(489, "do not retry", { "upstash-nonretryable-error": "true" });
        case "drop":
          return void req.socket.destroy();
        case "big":
          return done(200, Buffer.alloc(Number(arg), 0x61));
        case "big-fail":
          return done(500, Buffer.alloc(Number(arg), 0x62));
        case "redirect":
          return done(302, "moved", { location: decodeURIComponent(arg) });
        case "encoded": {
          const plain = Buffer.from("compressed hello");
          const coded = arg === "br" ? zlib.brotliCompressSync(plain) : arg === "deflate" ? zlib.deflateSync(plain) : zlib.gzipSync(plain);
          return done(200, coded, { "content-encoding": arg, "set-cookie": ["a=1", "b=2"], "x-multi": ["one", "two"] });
        }
        case "binary":
          return done(201, Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]), { "x-custom": "yes", "content-type": "application/octet-stream" });
        default:
          return done(200, "ok");
      }
    });
  });
  // Node closes a kept-alive connection after 5 s idle by default. A caller that reuses one just as it closes loses
  // its request ("Network connection lost" in workerd): an idle time longer than any pause in a test run keeps
  // that race out of the tests that allow no retry.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    base: `http://127.0.0.1:${actual}`,
    hits,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port with nothing listening on it (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
