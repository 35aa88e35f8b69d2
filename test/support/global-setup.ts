// Starts the real local destination server that the worker tests deliver to.
import type { TestProject } from "vitest/node";
import { closedPort, startDestination } from "./destination";

export default async function setup(project: TestProject) {
  const dest = await startDestination();
  project.provide("destinationPort", dest.port);
  project.provide("closedPort", await closedPort());
  return async () => dest.close();
}
