// hexToBytes (src/core/encoding.ts) reads bodies as SQLite's hex() gives them.
import { describe, expect, it } from "vitest";
import { hexToBytes } from "../../src/core/encoding";

describe("hexToBytes", () => {
  it("reads upper- and lower-case hex, every byte value, and the empty string", () => {
    const every = Uint8Array.from({ length: 256 }, (_, b) => b);
    const upper = [...every].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join("");
    expect([...hexToBytes(upper)]).toEqual([...every]);
    expect([...hexToBytes(upper.toLowerCase())]).toEqual([...every]);
    expect(hexToBytes("")).toEqual(new Uint8Array(0));
  });

  it("refuses what is not hex", () => {
    for (const bad of ["0", "0g", "zz", "12 3", "é1"]) expect(() => hexToBytes(bad)).toThrow(/not a hex string/);
  });
});
