// Starts the real local destination server that the worker tests deliver to, and the attempt relay of `npm start`
// (scripts/relay.mjs) as a Node process of its own, as `npm start` runs it.
import { fork } from "node:child_process";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { closedPort, startDestination } from "./destination";

/** The relay's secret in the worker tests (RELAY_SECRET in vitest.config.ts). */
const RELAY_SECRET = "test-relay-secret";

function startRelay(): Promise<{ address: string; stop: () => void }> {
  const child = fork(path.join(import.meta.dirname, "..", "..", "scripts", "relay.mjs"), [], {
    env: { ...process.env, BOOMERANG_RELAY_SECRET: RELAY_SECRET },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    child.once("message", (m) => resolve({ address: (m as { address: string }).address, stop: () => child.kill() }));
    child.once("exit", (code) => reject(new Error(`the attempt relay exited with code ${code}`)));
  });
}

export default async function setup(project: TestProject) {
  const dest = await startDestination();
  const relay = await startRelay();
  project.provide("destinationPort", dest.port);
  project.provide("closedPort", await closedPort());
  project.provide("relayAddress", relay.address);
  return async () => {
    relay.stop();
    await dest.close();
  };
}
