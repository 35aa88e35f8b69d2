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
    .sign(utf8(input.key));
}
