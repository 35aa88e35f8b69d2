/** @jsxImportSource hono/jsx */
/** The console's page frame and the small pieces every page uses. */
import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import { utf8OrNull } from "../core/encoding";
import type { Session } from "./session";

export const NAV = [
  ["/console", "Overview"],
  ["/console/logs", "Logs"],
  ["/console/dlq", "DLQ"],
  ["/console/schedules", "Schedules"],
  ["/console/workflows", "Workflows"],
  ["/console/queues", "Queues"],
  ["/console/topics", "URL groups"],
  ["/console/flow-control", "Flow control"],
  ["/console/publish", "Publish"],
] as const;

export interface PageProps {
  title: string;
  /** The nav entry this page belongs to. */
  section: string;
  session: Session | null;
  flash?: { kind: "ok" | "error"; text: string } | null;
  children?: Child;
}

export function Page(p: PageProps) {
  return (
    <>
      {raw("<!DOCTYPE html>")}
      <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${p.title} · Boomerang`}</title>
        <link rel="stylesheet" href="/console/assets/app.css" />
        <script src="/console/assets/app.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href="/console">
            Boomerang
          </a>
          {p.session ? (
            <nav aria-label="Console">
              {NAV.map(([href, label]) => (
                <a href={href} aria-current={p.section === href ? "page" : undefined}>
                  {label}
                </a>
              ))}
            </nav>
          ) : null}
          {p.session ? (
            <div class="who">
              <span>
                Tenant <strong class="mono">{p.session.tenant.id}</strong>
                {p.session.tenant.readOnly ? (
                  <>
                    {" "}
                    <span class="badge s-paused">read-only</span>
                  </>
                ) : null}
              </span>
              <form method="post" action="/console/logout" class="inline">
                <input type="hidden" name="_csrf" value={p.session.csrf} />
                <button type="submit">Sign out</button>
              </form>
            </div>
          ) : null}
        </header>
        <main id="main">
          <h1>{p.title}</h1>
          {p.flash ? (
            <div class={`flash ${p.flash.kind}`} role={p.flash.kind === "error" ? "alert" : "status"}>
              {p.flash.text}
            </div>
          ) : null}
          {p.children}
        </main>
      </body>
      </html>
    </>
  );
}

/** A POST form with the session's CSRF value; hidden entirely for a read-only session. */
export function Action(p: { session: Session; action: string; label: string; danger?: boolean; confirm?: string; fields?: Record<string, string>; primary?: boolean }) {
  if (p.session.tenant.readOnly) return null;
  return (
    <form method="post" action={p.action} class="inline" data-confirm={p.confirm}>
      <input type="hidden" name="_csrf" value={p.session.csrf} />
      {Object.entries(p.fields ?? {}).map(([k, v]) => (
        <input type="hidden" name={k} value={v} />
      ))}
      <button type="submit" class={p.danger ? "danger" : p.primary ? "primary" : undefined}>
        {p.label}
      </button>
    </form>
  );
}

export function Csrf(p: { session: Session }) {
  return <input type="hidden" name="_csrf" value={p.session.csrf} />;
}

export function Badge(p: { state: string }) {
  return <span class={`badge s-${p.state}`}>{p.state}</span>;
}

export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms <= 0) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function Time(p: { ms: number | null | undefined }) {
  const ms = p.ms;
  if (ms === null || ms === undefined || ms <= 0) return <span class="muted">–</span>;
  return <time datetime={new Date(ms).toISOString()}>{time(ms)}</time>;
}

export function isRedacted(value: string): boolean {
  return /^REDACTED:[0-9a-f]{64}$/.test(value);
}

/** Headers as name: value lines; redacted values are marked as such. */
export function Headers(p: { headers: Record<string, string[] | string> | null | undefined }) {
  const entries = Object.entries(p.headers ?? {});
  if (!entries.length) return <p class="muted small">No headers.</p>;
  return (
    <dl class="kv small mono">
      {entries.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>
            {(Array.isArray(v) ? v : [v]).map((one) =>
              isRedacted(one) ? (
                <span class="badge redacted" title={one}>
                  redacted
                </span>
              ) : (
                <div>{one}</div>
              ),
            )}
          </dd>
        </>
      ))}
    </dl>
  );
}

function base64ToBytes(b64: string): Uint8Array | null {
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

const HEX_VIEW_MAX = 4096;

function hexView(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let at = 0; at < Math.min(bytes.length, HEX_VIEW_MAX); at += 16) {
    const row = bytes.subarray(at, at + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...row].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${at.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > HEX_VIEW_MAX) lines.push(`… ${bytes.length - HEX_VIEW_MAX} more bytes`);
  return lines.join("\n");
}

/**
 * A body as the API gave it: `text` (already text) or `base64`. Shown as pretty JSON when it parses, as text when
 * it is UTF-8, otherwise as a hex view; a redacted body is shown as such.
 */
export function Body(p: { text?: string | null; base64?: string | null; truncatedSize?: number | null }) {
  let text: string | null = p.text ?? null;
  let bytes: Uint8Array | null = null;
  if (text === null && p.base64) {
    bytes = base64ToBytes(p.base64);
    text = bytes ? utf8OrNull(bytes) : null;
  }
  const note = p.truncatedSize ? <p class="muted small">Showing the first part of a {p.truncatedSize}-byte body.</p> : null;
  if (text !== null && isRedacted(text)) {
    return (
      <p>
        <span class="badge redacted" title={text}>
          redacted
        </span>{" "}
        <span class="muted small mono">{text}</span>
      </p>
    );
  }
  if ((text === null || text === "") && (!bytes || bytes.length === 0)) return <p class="muted small">Empty body.</p>;
  if (text !== null) {
    try {
      const parsed = JSON.parse(text);
      if (parsed !== null && typeof parsed === "object") {
        return (
          <>
            {note}
            <p class="muted small">JSON</p>
            <pre>{JSON.stringify(parsed, null, 2)}</pre>
          </>
        );
      }
    } catch {
      // not JSON: shown as text
    }
    return (
      <>
        {note}
        <p class="muted small">Text</p>
        <pre>{text}</pre>
      </>
    );
  }
  return (
    <>
      {note}
      <p class="muted small">Binary, {bytes!.length} bytes (hex)</p>
      <pre>{hexView(bytes!)}</pre>
    </>
  );
}

/** The filter form of a list page: its fields, then "Filter" and "Clear" (back to the unfiltered page). */
export function FilterForm(p: { action: string; children?: Child }) {
  return (
    <form method="get" action={p.action} class="card" aria-label="Filters">
      <div class="fields">
        {p.children}
        <div class="actions">
          <button type="submit" class="primary">
            Filter
          </button>
          <a class="button" href={p.action}>
            Clear
          </a>
        </div>
      </div>
    </form>
  );
}

/** A "State" select of a filter form. */
export function StateSelect(p: { states: readonly string[]; value: string | undefined }) {
  return (
    <div>
      <label for="f-state">State</label>
      <select id="f-state" name="state">
        <option value="">Any</option>
        {p.states.map((st) => (
          <option value={st} selected={p.value === st}>
            {st}
          </option>
        ))}
      </select>
    </div>
  );
}

/** The "From" and "To" fields (UTC) of a filter form. */
export function TimeRange(p: { from: string | undefined; to: string | undefined }) {
  return (
    <>
      <Field name="from" label="From (UTC)" type="datetime-local" value={p.from} />
      <Field name="to" label="To (UTC)" type="datetime-local" value={p.to} />
    </>
  );
}

/** A labelled text input. */
export function Field(p: { name: string; label: string; value?: string | number | null; type?: string; placeholder?: string; id?: string; wide?: boolean; required?: boolean; hint?: string }) {
  const id = p.id ?? `f-${p.name}`;
  return (
    <div class={p.wide ? "wide" : undefined}>
      <label for={id}>{p.label}</label>
      <input
        id={id}
        name={p.name}
        type={p.type ?? "text"}
        value={p.value === null || p.value === undefined ? "" : String(p.value)}
        placeholder={p.placeholder}
        required={p.required}
        aria-describedby={p.hint ? `${id}-hint` : undefined}
      />
      {p.hint ? (
        <div class="muted small" id={`${id}-hint`}>
          {p.hint}
        </div>
      ) : null}
    </div>
  );
}
