/**
 * Byte budgets of list pages (logs, events, DLQ): a page carries message and response bodies, so its length in
 * entries alone does not bound its memory. A page is read in two steps: first the body sizes of the candidate rows,
 * then the rows that fit the budget. A page that stops early for its budget has a cursor, like any page.
 */

/**
 * Body bytes one page may carry in all (before JSON and base64). Eight MiB lets the whole log of one message of the
 * 10 MB maximum with a 10 MB response (its entries' bodies cut at 1 MiB each) fit one page.
 */
export const PAGE_BODY_BUDGET = 8 << 20;
/** A body kept in R2 is read into a page up to this many bytes; the entry then says its body was cut. */
export const PAGE_BODY_MAX = 1 << 20;

/** The size facts of one candidate row: its inline body bytes and how many of its bodies live in R2. */
export interface RowSize {
  key: number;
  inline: number;
  refs: number;
}

/**
 * The keys of the rows that fit the budget, in order, and whether more rows follow. The first row is always taken
 * (its R2 bodies are cut at PAGE_BODY_MAX, its inline ones are small), so paging always moves on.
 */
export function fitPage(rows: RowSize[], pageSize: number): { keys: number[]; more: boolean } {
  const keys: number[] = [];
  let total = 0;
  for (const r of rows.slice(0, pageSize)) {
    const cost = r.inline + r.refs * PAGE_BODY_MAX;
    if (keys.length > 0 && total + cost > PAGE_BODY_BUDGET) break;
    total += cost;
    keys.push(r.key);
  }
  return { keys, more: rows.length > keys.length };
}
