import { expect, it } from "vitest";
import { dest, publishOk, uniqueKey, waitForHits, waitForState } from "./helpers";

it("publishes and delivers to a real local server", async () => {
  const key = uniqueKey();
  const id = await publishOk(dest(`${key}/ok`), { body: "hello", headers: { "content-type": "text/plain" } });
  const [hit] = await waitForHits(key, 1);
  expect(hit.headers["upstash-message-id"]).toBe(id);
  expect(atob(hit.body)).toBe("hello");
  expect(await waitForState(id, "DELIVERED")).toEqual(["CREATED", "ACTIVE", "DELIVERED"]);
});
