/** Upstash-Redact-Fields: which parts of a message read paths hide, and their REDACTED:<sha256> forms. */
import { sha256Hex } from "./encoding";
import { badRequest } from "./errors";
import { type HeaderMap, canonicalName } from "./headers";
import type { Redacted } from "./types";

export interface RedactSpec {
  body: boolean;
  allHeaders: boolean;
  headers: string[];
}

/** `body`, `header` / `headers` (all), `header[Name]` (one); comma-separated, spaces allowed. */
export function parseRedact(value: string | undefined): RedactSpec | null {
  if (value === undefined) return null;
  const spec: RedactSpec = { body: false, allHeaders: false, headers: [] };
  for (const raw of value.split(",")) {
    const part = raw.trim();
    const one = /^headers?\[([^\]]+)\]$/i.exec(part);
    if (part.toLowerCase() === "body") spec.body = true;
    else if (part.toLowerCase() === "header" || part.toLowerCase() === "headers") spec.allHeaders = true;
    else if (one) spec.headers.push(canonicalName(one[1].trim()));
    else {
      throw badRequest(`Upstash-Redact-Fields: "${part}" is not a field; use body, header, headers or header[Name]`);
    }
  }
  return spec;
}

const mark = async (value: string | Uint8Array) => `REDACTED:${await sha256Hex(value)}`;

/** The forms read paths show; null when nothing is redacted. */
export async function redactedForms(spec: RedactSpec | null, headers: HeaderMap, body: Uint8Array): Promise<Redacted | null> {
  if (!spec || (!spec.body && !spec.allHeaders && spec.headers.length === 0)) return null;
  const out: Redacted = {};
  if (spec.body) out.body = await mark(body);
  if (spec.allHeaders || spec.headers.length) {
    const shown: HeaderMap = {};
    for (const [name, values] of Object.entries(headers)) {
      const hide = spec.allHeaders || spec.headers.includes(name);
      shown[name] = hide ? await Promise.all(values.map((v) => mark(v))) : values;
    }
    out.headers = shown;
  }
  return out;
}
