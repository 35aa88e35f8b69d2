// hexToBytes (src/core/encoding.ts) reads bodies as SQLite's hex() gives them.
import { describe, expect, it } from "vitest";
import { base64ToBytes, bytesToBase64, bytesToHex, hexToBytes } from "../../src/core/encoding";

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

describe("bytesToBase64", () => {
  it("gives what btoa gives, for every length around the padding and every byte value", () => {
    const every = Uint8Array.from({ length: 256 }, (_, b) => b);
    for (let len = 0; len <= 70; len++) {
      const bytes = every.subarray(256 - len);
      expect(bytesToBase64(bytes)).toBe(btoa(String.fromCharCode(...bytes)));
      expect([...base64ToBytes(bytesToBase64(bytes))]).toEqual([...bytes]);
    }
    const big = Uint8Array.from({ length: 100_003 }, (_, i) => (i * 131) & 255);
    expect([...base64ToBytes(bytesToBase64(big))]).toEqual([...big]);
  });
});

describe("bytesToHex", () => {
  it("gives lower-case hex, two digits a byte, either side of the length where it changes method", () => {
    for (const len of [0, 1, 63, 64, 65, 256, 5000]) {
      const bytes = Uint8Array.from({ length: len }, (_, i) => (i * 151 + 7) & 0xff);
      const want = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
      expect(bytesToHex(bytes)).toBe(want);
      expect([...hexToBytes(bytesToHex(bytes))]).toEqual([...bytes]);
    }
  });
});
