// queryOfUrl (src/routes/common.ts) reads a request's query without parsing its whole URL: it must give what
// `new URL(url).searchParams` gives for the URLs the runtime hands the worker.
import { describe, expect, it } from "vitest";
import { queryOfUrl } from "../../src/routes/common";

const URLS = [
  "http://boomerang.test/v2/publish/https://example.com/hook",
  "http://boomerang.test/v2/publish/https://example.com/hook?id=7&upstash-delay=10s",
  "http://boomerang.test/v2/publish/https://example.com/hook?",
  "http://boomerang.test/v2/publish/https://example.com/hook?a=1&a=2&b=&c",
  "http://boomerang.test/v2/logs?cursor=x%2By&q=a+b&r=%zz&s=%E2%82%AC",
  "http://boomerang.test/v2/publish/https://example.com/a?b=1?c=2&d=%3F",
  "http://boomerang.test/v2/x?a=1#frag?b=2",
  "http://boomerang.test/v2/x#only-fragment",
  "http://boomerang.test/v2/x?q=caf%C3%A9&raw=é&quote=%22",
];

describe("queryOfUrl", () => {
  for (const url of URLS) {
    it(`gives what URL does: ${url.slice(url.indexOf("/v2"))}`, () => {
      const runtime = new Request(url).url; // as the worker gets it
      expect([...queryOfUrl(runtime)]).toEqual([...new URL(runtime).searchParams]);
    });
  }
});
