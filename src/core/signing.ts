/** The Upstash-Signature JWT (contract §6): HS256 over the exact bytes sent, verifiable by the official Receiver. */
import { SignJWT } from "jose";
import { newJwtId } from "./ids";
import { sha256, utf8 } from "./encoding";

/** base64url with `=` padding, as QStash emits the `body` claim. */
function base64UrlPadded(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_");
}

export interface SignInput {
  /** The tenant's current signing key; the HMAC secret is its UTF-8 bytes, `sig_` included. */
  key: string;
  /** The exact URL being called (the `sub` claim). */
  url: string;
  body: Uint8Array;
  /** Seconds since the epoch. */
  nowS: number;
  lifetimeS: number;
}

/**
 * The HMAC keys of this isolate's signing keys, imported once each: a raw key given to jose is imported again on
 * every signature. Cleared when full (keys are rotated rarely; a tenant has two).
 */
const hmacKeys = new Map<string, Promise<CryptoKey>>();
const HMAC_KEYS_MAX = 1_000;

function hmacKey(key: string): Promise<CryptoKey> {
  let k = hmacKeys.get(key);
  if (!k) {
    if (hmacKeys.size >= HMAC_KEYS_MAX) hmacKeys.clear();
    k = crypto.subtle.importKey("raw", utf8(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    // A failed import is not kept: the next signature tries again.
    k.catch(() => hmacKeys.delete(key));
    hmacKeys.set(key, k);
  }
  return k;
}

export async function signDelivery(input: SignInput): Promise<string> {
  const bodyHash = base64UrlPadded(await sha256(input.body));
  return new SignJWT({ body: bodyHash })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer("Upstash")
    .setSubject(input.url)
    .setIssuedAt(input.nowS)
    .setExpirationTime(input.nowS + input.lifetimeS)
    .setNotBefore(0)
    .setJti(newJwtId())
    .sign(await hmacKey(input.key));
}
