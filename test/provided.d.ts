// Values the global setup provides to the worker tests (see test/support/global-setup.ts).
declare module "vitest" {
  export interface ProvidedContext {
    destinationPort: number;
    closedPort: number;
  }
}
export {};
