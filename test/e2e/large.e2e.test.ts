/**
 * End-to-end: large bodies through `npm run dev` and the official SDK. A 1 MB body answered with 1 MB and a
 * callback (the payload that once overflowed D1 and looped forever), the 10 MB maximum, and, on a server told to
 * keep every body in its row (INLINE_BODY_MAX far above D1's 2 MB value limit), an outcome that cannot be
 * written: the message must end visibly (ERROR with the cause, FAILED, DLQ, failure callback), never loop.
 */
import { type CallbackBody, pattern } from "../support/large";
import { createHash } from "node:crypto";
import { Client, Receiver } from "@upstash/qstash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Destination, startDestination } from "../support/destination";
import { USER1, hitsFor, uniqueKey, waitFor, waitForHits } from "./helpers";
import { type DevServer, showServerOnFailure, startServer } from "./server";


const fromBase64 = (b64: string) => Buffer.from(b64, "base64");
const sha = (b: Buffer | Uint8Array) => createHash("sha256").update(b).digest("hex");


let dest: Destination;
let server: DevServer | undefined;
let inlineServer: DevServer | undefined;
const receiver = new Receiver({ currentSigningKey: USER1.currentSigningKey, nextSigningKey: USER1.nextSigningKey });

beforeAll(async () => {
  dest = await startDestination();
  server = await startServer();
  inlineServer = await startServer({ vars: { INLINE_BODY_MAX: "100000000" } });
});
afterAll(async () => {
  await server?.stop();
  await inlineServer?.stop();
  await dest?.close();
});
showServerOnFailure(() => server);
showServerOnFailure(() => inlineServer);

describe("large bodies", () => {
  it("1 MB answered with 1 MB and a callback: delivered once, the callback carries both exactly, signed", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER1.token });
    const key = uniqueKey("e2e-mb");
    const body = pattern(1_000_000);
    const callbackUrl = `${dest.base}/${key}-cb/ok`;
    const { messageId } = (await client.publish({ url: `${dest.base}/${key}/big/1000000`, body: new Blob([body]), callback: callbackUrl })) as {
      messageId: string;
    };
    const [cb] = await waitForHits(dest, `${key}-cb`, 1, 30_000);
    const raw = fromBase64(cb.body);
    expect(await receiver.verify({ signature: cb.headers["upstash-signature"], body: raw.toString("utf8"), url: callbackUrl })).toBe(true);
    const payload = JSON.parse(raw.toString("utf8")) as CallbackBody;
    expect(payload).toMatchObject({ status: 200, sourceMessageId: messageId });
    expect(sha(fromBase64(payload.sourceBody))).toBe(sha(body));
    expect(sha(fromBase64(payload.body))).toBe(sha(Buffer.alloc(1_000_000, 0x61)));
    const logs = await client.logs({ filter: { messageId } });
    expect(logs.logs.map((l) => l.state).sort()).toEqual(["ACTIVE", "CREATED", "DELIVERED"]);
    expect(hitsFor(dest, key).length).toBe(1);
    expect(sha(fromBase64(hitsFor(dest, key)[0].body))).toBe(sha(body));
  });

  it("the 10 MB maximum is delivered byte for byte; one byte more is a 413", async () => {
    const client = new Client({ baseUrl: server!.url, token: USER1.token });
    const key = uniqueKey("e2e-10mb");
    const body = pattern(10 * 1024 * 1024);
    await client.publish({ url: `${dest.base}/${key}/ok`, body: new Blob([body]) });
    const [hit] = await waitForHits(dest, key, 1, 60_000);
    expect(sha(fromBase64(hit.body))).toBe(sha(body));
    const over = await fetch(`${server!.url}/v2/publish/${dest.base}/${key}/ok`, {
      method: "POST",
      headers: { authorization: `Bearer ${USER1.token}` },
      body: new Blob([pattern(10 * 1024 * 1024 + 1)]),
    });
    expect(over.status).toBe(413);
  }, 90_000);

  it("an outcome that cannot be written ends the message visibly: ERROR with the cause, FAILED, DLQ, failure callback", async () => {
    const client = new Client({ baseUrl: inlineServer!.url, token: USER1.token });
    const key = uniqueKey("e2e-toobig");
    const { messageId } = (await client.publish({
      url: `${dest.base}/${key}/big/1000000`,
      body: new Blob([pattern(1_000_000)]),
      callback: `${dest.base}/${key}-cb/ok`,
      failureCallback: `${dest.base}/${key}-fcb/ok`,
    })) as { messageId: string };
    const [fcb] = await waitForHits(dest, `${key}-fcb`, 1, 30_000);
    const payload = JSON.parse(fromBase64(fcb.body).toString("utf8")) as CallbackBody;
    expect(payload.sourceMessageId).toBe(messageId);
    expect(payload.status).toBe(200);
    const states = await waitFor("the message to end", async () => {
      const logs = await client.logs({ filter: { messageId } });
      const s = logs.logs.map((l) => l.state);
      return s.includes("FAILED") ? logs.logs : undefined;
    });
    const error = states.find((l) => l.state === "ERROR");
    expect(error?.error).toMatch(/could not be stored.*(TOOBIG|too big)/i);
    const dlq = await client.dlq.listMessages({ filter: { messageId } });
    expect(dlq.messages.length).toBe(1);
    expect(dlq.messages[0].dlqId).toBe(payload.dlqId);
    // The destination was called once; the message is terminal, so no lease expiry brings it back.
    expect(hitsFor(dest, key).length).toBe(1);
    await expect(client.messages.get(messageId)).rejects.toMatchObject({ status: 404 });
  });
});
