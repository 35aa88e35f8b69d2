// Types of scripts/v8-flags.mjs, for the TypeScript that imports it (test/e2e/v8-flags.e2e.test.ts).

/** The V8 flags `npm start` passes unless told otherwise, as `--v8-flags` takes them. */
export const DEFAULT_V8_FLAGS: string;
/** `--v8-flags` / BOOMERANG_V8_FLAGS as a list: space-separated, leading dashes optional, "none" for none. */
export function parseV8Flags(text: string | undefined): string[];
/** The binary config message with `flags` as its v8Flags (the message itself when there are none). */
export function withV8Flags(message: Buffer, flags: string[]): Buffer;
/** Every workerd process this process starts from now on gets `flags`. */
export function passV8Flags(flags: string[], isWorkerd?: (command: string) => boolean): void;
