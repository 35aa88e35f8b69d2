// Values the global setup provides to the worker tests (see test/support/global-setup.ts).
declare module "vitest" {
  export interface ProvidedContext {
    destinationPort: number;
    closedPort: number;
    /** The attempt relay (scripts/relay.mjs), a Node process with the secret `test-relay-secret`. */
    relayAddress: string;
  }
}
export {};
