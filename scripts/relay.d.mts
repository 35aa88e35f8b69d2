// Types of scripts/relay.mjs, for the TypeScript that imports it (test/support/global-setup.ts).
import type { ChildProcess } from "node:child_process";
import type { Server } from "node:http";

/** Starts the relay as a child process of this one, with `secret`; resolves with the child and its `host:port`. */
export function forkRelay(secret: string): Promise<{ child: ChildProcess; address: string }>;
/** Serves the relay in this process. */
export function serveRelay(options: { secret: string; host?: string; port?: number }): Promise<{ server: Server; address: string }>;
