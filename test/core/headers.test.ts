// pairsToMap (src/core/headers.ts) folds the header pairs the attempt relay reads off the wire as the worker's own
// fetch would give them through a Headers object: the same map as headersToMap(new Headers(pairs)).
import { describe, expect, it } from "vitest";
import { type HeaderMap, canonicalName, headerPairs, headersToMap, invalidHeader, pairsToMap } from "../../src/core/headers";

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

// headerPairs builds a delivery's request headers without a Headers object: the pairs must be what iterating one
// gives, with the stored headers appended and the delivery's own headers set over them.
describe("headerPairs", () => {
  const SET: [string, string][] = [["User-Agent", "Upstash-QStash"], ["Upstash-Message-Id", "msg_1"], ["Upstash-Retried", "0"]];
  const MAPS: [string, HeaderMap][] = [
    ["plain", { "Content-Type": ["text/plain"], "X-Id": ["7"] }],
    ["repeats joined, Set-Cookie kept apart", { "X-Multi": ["one", "two"], "Set-Cookie": ["a=1", "b=2"], Vary: ["Accept"] }],
    ["names in any case fold together", { "x-mixed": ["lower"], "X-MIXED": ["upper"] }],
    ["the delivery's own headers replace forwarded ones", { "User-Agent": ["mine"], "upstash-message-id": ["forged"], "X-Keep": ["kept"] }],
    ["whitespace at the ends dropped, inside kept, empty values kept", { "X-Space": ["  a  b \t"], "X-Empty": [""] }],
    ["names that sort before and after the set ones", { Accept: ["*/*"], Zeta: ["z"], "Upstash-A": ["1"] }],
  ];
  for (const [label, map] of MAPS) {
    it(`gives what a Headers object gives: ${label}`, () => {
      const headers = new Headers();
      for (const [n, values] of Object.entries(map)) for (const v of values) headers.append(n, v);
      for (const [n, v] of SET) headers.set(n, v);
      expect(headerPairs(map, SET)).toEqual([...headers]);
    });
  }

  it("refuses, as Headers does, a header HTTP cannot carry", () => {
    const bad: [string, string][] = [["bad name", "x"], ["X-Ok", "a\nb"], ["X-Ok", "a\rb"], ["X-Ok", "a\0b"], ["Bad:Colon", "x"]];
    for (const [name, value] of bad) {
      expect(() => new Headers([[name, value]])).toThrow(TypeError);
      expect(invalidHeader(name, value)).not.toBeNull();
      expect(() => headerPairs({ [name]: [value] }, SET)).toThrow(TypeError);
    }
    // Stricter than the runtime's Headers, which takes an empty name (and sends it): not a header HTTP defines.
    expect(invalidHeader("", "x")).toMatch(/not a valid HTTP header name/);
    // A line break at either end is whitespace that Headers drops: the header is valid.
    expect(invalidHeader("X-Ok", "value\r\n")).toBeNull();
    expect(headerPairs({ "X-Ok": ["value\r\n"] }, [])).toEqual([...new Headers([["X-Ok", "value\r\n"]])]);
  });
});

describe("canonicalName", () => {
  it("capitalizes each dash-separated part of a token name, the same on every call, and leaves other names as they are", () => {
    const cases: [string, string][] = [
      ["content-type", "Content-Type"],
      ["CONTENT-TYPE", "Content-Type"],
      ["x-a--b", "X-A--B"],
      ["upstash-nonretryable-error", "Upstash-Nonretryable-Error"],
      ["bad name", "bad name"],
      ["x_under_score", "X_under_score"],
      ["x-" + "long".repeat(40), "X-" + "Long" + "long".repeat(39)],
    ];
    for (let round = 0; round < 3; round++) for (const [name, want] of cases) expect(canonicalName(name)).toBe(want);
    // Past the memo's size, names are still right.
    for (let i = 0; i < 2_500; i++) expect(canonicalName(`x-h${i}-end`)).toBe(`X-H${i}-End`);
    expect(canonicalName("content-type")).toBe("Content-Type");
  });
});
