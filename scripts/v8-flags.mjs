// V8 flags for the workerd processes that `npm start` has Miniflare start. workerd reads them from its config
// (`Config.v8Flags`, a list of text), but Miniflare has no option for that field. So the launcher adds it to the config
// Miniflare sends: Miniflare serializes the config as a binary Cap'n Proto message and writes it to the new workerd
// process's stdin, and `passV8Flags` rewrites that message on its way, for the workerd processes only.
//
// Why a flag at all: see docs/architecture.md, "Serving modes" (the runtime's sweep of dead objects).
import childProcess from "node:child_process";
import path from "node:path";

/**
 * The flags `npm start` passes unless told otherwise. `--heap-growing-percent=20` has V8 collect when the heap has
 * grown by a fifth since the last collection, instead of letting it grow up to several times: more of the runtime's
 * objects of a burst of requests (`Request`, `Response`, `Headers`) are then freed in shorter pauses of its one
 * thread, and the pauses of 100–250 ms in which every timer and request waits come about half as often.
 */
export const DEFAULT_V8_FLAGS = "heap-growing-percent=20";

/** `--v8-flags` / BOOMERANG_V8_FLAGS: space-separated, leading dashes optional, "none" (or nothing) for none. */
export function parseV8Flags(text) {
  const words = String(text ?? "").trim().split(/\s+/).filter(Boolean);
  if (words.length === 1 && words[0] === "none") return [];
  return words.map((w) => (w.startsWith("-") ? w : `--${w}`));
}

/** Config.v8Flags is the third pointer field of workerd's Config struct (pointer slot 2; services 0, sockets 1). */
const V8_FLAGS_SLOT = 2;
const WORD = 8;

/**
 * The config message with `flags` as its v8Flags. The message must be a single Cap'n Proto message whose root is a
 * struct with no v8Flags yet (Miniflare never sets them). The list and its texts go at the end of the first segment,
 * which moves nothing already in the message: pointers are relative to their own place, and other segments are found
 * by number.
 */
export function withV8Flags(message, flags) {
  if (!flags.length) return message;
  const fail = (why) => {
    throw new Error(`cannot add V8 flags to the runtime's config: ${why} (npm start --v8-flags none passes none)`);
  };
  if (message.length < WORD * 2) fail("the message is too short");
  const segments = message.readUInt32LE(0) + 1;
  const headerBytes = Math.ceil((4 + 4 * segments) / WORD) * WORD;
  const sizes = [];
  for (let i = 0; i < segments; i++) sizes.push(message.readUInt32LE(4 + 4 * i));
  const total = headerBytes + sizes.reduce((a, b) => a + b, 0) * WORD;
  if (total !== message.length) fail(`its segment table says ${total} bytes, the message has ${message.length}`);

  const seg0 = headerBytes;
  const word = (i) => message.readBigUInt64LE(seg0 + i * WORD);
  const root = word(0);
  if ((root & 3n) !== 0n) fail("its root is not a struct");
  const offset = signed30(Number((root >> 2n) & 0x3fffffffn));
  const dataWords = Number((root >> 32n) & 0xffffn);
  const pointers = Number((root >> 48n) & 0xffffn);
  if (pointers <= V8_FLAGS_SLOT) fail("its root struct has no v8Flags field");
  const slot = 1 + offset + dataWords + V8_FLAGS_SLOT;
  if (slot >= sizes[0]) fail("its root struct lies outside the first segment");
  if (word(slot) !== 0n) fail("it has v8Flags already");

  // The appended words: the list of pointers, then each flag's text (UTF-8, NUL-terminated, padded to a word).
  const texts = flags.map((f) => Buffer.from(`${f}\0`, "utf8"));
  const textWords = texts.map((t) => Math.ceil(t.length / WORD));
  const added = flags.length + textWords.reduce((a, b) => a + b, 0);
  const extra = Buffer.alloc(added * WORD);
  const listAt = sizes[0];
  let textAt = listAt + flags.length;
  texts.forEach((t, i) => {
    extra.writeBigUInt64LE(listPointer(textAt - (listAt + i + 1), 2, t.length), i * WORD); // element size 2: bytes
    t.copy(extra, (textAt - listAt) * WORD);
    textAt += textWords[i];
  });

  const out = Buffer.concat([message.subarray(0, seg0 + sizes[0] * WORD), extra, message.subarray(seg0 + sizes[0] * WORD)]);
  out.writeUInt32LE(sizes[0] + added, 4);
  out.writeBigUInt64LE(listPointer(listAt - (slot + 1), 6, flags.length), seg0 + slot * WORD); // element size 6: pointers
  return out;
}

function signed30(v) {
  return v & 0x20000000 ? v - 0x40000000 : v;
}

/** A list pointer: kind 1, the offset in words from the word after the pointer, the element size code, the count. */
function listPointer(offsetWords, elementSize, count) {
  const lo = BigInt(((offsetWords << 2) | 1) >>> 0);
  const hi = BigInt(elementSize) | (BigInt(count) << 3n);
  return lo | (hi << 32n);
}

/**
 * From now on, every workerd process that this process starts (through child_process.spawn, as Miniflare does) gets
 * `flags` as V8 flags. `isWorkerd` tells a workerd command from others (the relay, wrangler).
 */
export function passV8Flags(flags, isWorkerd = (command) => /workerd/.test(path.basename(command))) {
  if (!flags.length) return;
  const spawn = childProcess.spawn;
  childProcess.spawn = function spawnWithV8Flags(command, args, options) {
    const child = spawn.call(this, command, args, options);
    if (typeof command !== "string" || !isWorkerd(command) || !child.stdin) return child;
    // Miniflare writes the whole config in one write, then ends stdin.
    const write = child.stdin.write;
    let first = true;
    child.stdin.write = function writeConfig(chunk, ...rest) {
      if (!first) return write.call(this, chunk, ...rest);
      first = false;
      return write.call(this, withV8Flags(Buffer.from(chunk), flags), ...rest);
    };
    return child;
  };
}
