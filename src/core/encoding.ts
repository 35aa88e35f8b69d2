/** Byte helpers: base64, UTF-8 detection, hex digests. */

export function bytesToBase64(bytes: Uint8Array): string {
  let bin = "";
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) {
    bin += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(bin);
}

/** Standard base64 (with or without padding) as bytes; throws on other characters. */
export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The bytes as a string when they are valid UTF-8, otherwise null. */
export function utf8OrNull(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function sha256Hex(input: string | Uint8Array): Promise<string> {
  const digest = await sha256(typeof input === "string" ? utf8(input) : input);
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The bytes of SQLite's `hex()` of a BLOB (upper-case digits, two per byte). D1 answers a BLOB column as an array of
 * numbers, one per byte, which costs several times its size to serialize and parse; bodies are read as hex instead.
 */
export function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9A-Fa-f]*$/.test(hex)) throw new Error("not a hex string");
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = (HEX_VALUE[hex.charCodeAt(2 * i)] << 4) | HEX_VALUE[hex.charCodeAt(2 * i + 1)];
  return out;
}

const HEX_VALUE = (() => {
  const t = new Uint8Array(128);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) t[65 + i] = t[97 + i] = 10 + i;
  return t;
})();

/** D1 returns BLOB columns as number arrays or ArrayBuffers depending on the path; normalise. */
export function blobToBytes(value: unknown): Uint8Array {
  if (value == null) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (Array.isArray(value)) return Uint8Array.from(value as number[]);
  if (typeof value === "string") return utf8(value);
  throw new Error("unexpected blob value");
}
