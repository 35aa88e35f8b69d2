/** Shared by the large-body tests (worker and end-to-end): test bytes and the callback body they check. */

/** Deterministic bytes that are not valid UTF-8 everywhere, so the base64 forms are exercised too. */
export function pattern(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(new ArrayBuffer(size));
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >> 9)) & 0xff;
  return out;
}

/** The fields of a callback or failure-callback body these tests read (contract §5.2). */
export interface CallbackBody {
  status: number;
  body: string;
  sourceBody: string;
  sourceMessageId: string;
  dlqId?: string;
}
