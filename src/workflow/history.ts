/** A run's history as the workflow endpoint receives it: `{messageId, body (base64), callType}` per element. */
import { bytesToBase64 } from "../core/encoding";
import { loadBlob } from "../db/blobs";
import type { StoredStep } from "../db/workflow-runs";
import type { Env } from "../env";

export interface RawStep {
  messageId: string;
  body: string;
  callType: string;
}

/** The elements with the bodies kept in R2 read back. */
export async function rawSteps(env: Env, steps: StoredStep[]): Promise<RawStep[]> {
  return Promise.all(
    steps.map(async (s) => ({ messageId: s.m, body: s.r ? bytesToBase64(await loadBlob(env, s.r)) : s.b, callType: s.c })),
  );
}
