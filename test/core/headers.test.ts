// pairsToMap (src/core/headers.ts) folds the header pairs the attempt relay reads off the wire as the worker's own
// fetch would give them through a Headers object: the same map as headersToMap(new Headers(pairs)).
import { describe, expect, it } from "vitest";
import { headersToMap, pairsToMap } from "../../src/core/headers";

const CASES: [string, [string, string][]][] = [
  ["plain", [["Content-Type", "text/plain"], ["Content-Length", "2"], ["Date", "Thu, 03 Dec 2026 19:00:00 GMT"]]],
  ["repeats in any case, joined in order", [["X-Multi", "one"], ["x-multi", "two"], ["X-MULTI", "three"]]],
  ["Set-Cookie kept apart", [["Set-Cookie", "a=1; Path=/"], ["set-cookie", "b=2"], ["Vary", "Accept"], ["Vary", "Origin"]]],
  ["hop-by-hop headers dropped", [["Connection", "keep-alive"], ["Keep-Alive", "timeout=5"], ["Transfer-Encoding", "chunked"], ["Upstash-NonRetryable-Error", "true"]]],
  ["whitespace at the ends trimmed, inside kept", [["X-Space", "  a  b \t"], ["X-Empty", ""]]],
  ["non-token-like names as they come", [["x_under_score", "1"], ["X-Dots.In.Name", "2"]]],
];

describe("pairsToMap", () => {
  for (const [label, pairs] of CASES) {
    it(`gives what Headers gives: ${label}`, () => {
      const headers = new Headers();
      for (const [n, v] of pairs) headers.append(n, v);
      expect(pairsToMap(pairs)).toEqual(headersToMap(headers));
      // Same keys in the same order too (the map is stored as JSON).
      expect(Object.keys(pairsToMap(pairs))).toEqual(Object.keys(headersToMap(headers)));
    });
  }
});
