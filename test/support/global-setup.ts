// Starts the real local destination server that the worker tests deliver to, and the attempt relay of `npm start`
// (scripts/relay.mjs) as a Node process of its own, as `npm start` runs it.
import type { TestProject } from "vitest/node";
import { forkRelay } from "../../scripts/relay.mjs";
import { closedPort, startDestination } from "./destination";

/** The relay's secret in the worker tests (RELAY_SECRET in vitest.config.ts). */
const RELAY_SECRET = "test-relay-secret";

export default async function setup(project: TestProject) {
  const dest = await startDestination();
  const relay = await forkRelay(RELAY_SECRET);
  project.provide("destinationPort", dest.port);
  project.provide("closedPort", await closedPort());
  project.provide("relayAddress", relay.address);
  return async () => {
    relay.child.kill();
    await dest.close();
  };
}
