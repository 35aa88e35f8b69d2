/** The Upstash-Retry-Delay expression language: a tiny arithmetic parser and evaluator over the variable `retried`. */

import { ApiError } from "./errors";

/** A compiled retry delay expression. */
export type RetryDelayExpr = {
  /** The expression as the caller wrote it. */
  readonly source: string;
  /** Computes the raw delay in milliseconds; may be NaN, ±Infinity or negative. */
  evaluate(retried: number): number;
};

/** Longest accepted expression, checked before any parsing so hostile input costs nothing. */
export const MAX_EXPR_LENGTH = 1000;

/** Deepest accepted nesting of parentheses and function calls. */
export const MAX_EXPR_DEPTH = 64;

/** Longest slice of the expression that is echoed back in an error message. */
const MAX_ECHO = 100;

/** The one variable an expression may use. */
const VARIABLE = "retried";

/** How to write a valid expression, appended to parse errors. */
const EXPR_HINT = 'write a formula in "retried" using numbers, + - * /, parentheses and functions, like 1000 * (1 + retried)';

// ---------------------------------------------------------------------------
// Syntax tree

type BinaryOp = "+" | "-" | "*" | "/";

type Node =
  | { kind: "number"; value: number }
  | { kind: "variable" }
  | { kind: "negate"; operand: Node }
  | { kind: "binary"; op: BinaryOp; left: Node; right: Node }
  | { kind: "call"; fn: FunctionSpec; args: Node[] };

/** A built-in function: its argument count bounds and implementation. */
type FunctionSpec = {
  name: string;
  minArgs: number;
  maxArgs: number;
  apply: (args: number[]) => number;
};

/** How a function should be called, for error messages. */
function usage(spec: FunctionSpec): string {
  if (spec.maxArgs === Infinity) return `${spec.name}(a, b, ...)`;
  if (spec.maxArgs === 2) return `${spec.name}(x, y)`;
  return `${spec.name}(x)`;
}

function unary(name: string, fn: (x: number) => number): FunctionSpec {
  return { name, minArgs: 1, maxArgs: 1, apply: (args) => fn(args[0] as number) };
}

/** The built-in functions. A Map keeps lookups away from Object.prototype names like "constructor". */
const FUNCTIONS: ReadonlyMap<string, FunctionSpec> = new Map(
  [
    { name: "pow", minArgs: 2, maxArgs: 2, apply: (args: number[]) => Math.pow(args[0] as number, args[1] as number) },
    unary("exp", Math.exp),
    unary("sqrt", Math.sqrt),
    unary("abs", Math.abs),
    unary("floor", Math.floor),
    unary("ceil", Math.ceil),
    unary("round", Math.round),
    { name: "min", minArgs: 1, maxArgs: Infinity, apply: (args: number[]) => Math.min(...args) },
    { name: "max", minArgs: 1, maxArgs: Infinity, apply: (args: number[]) => Math.max(...args) },
  ].map((spec): [string, FunctionSpec] => [spec.name, spec]),
);

const FUNCTION_LIST = [...FUNCTIONS.keys()].join(", ");

// ---------------------------------------------------------------------------
// Tokens

type Token =
  | { kind: "number"; value: number; text: string; pos: number }
  | { kind: "name"; text: string; pos: number }
  | { kind: "punct"; text: "+" | "-" | "*" | "/" | "(" | ")" | ","; pos: number }
  | { kind: "end"; text: ""; pos: number };

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= "0" && ch <= "9";
}

function isNameStart(ch: string | undefined): boolean {
  return ch !== undefined && ((ch >= "a" && ch <= "z") || (ch >= "A" && ch <= "Z") || ch === "_");
}

function isNameChar(ch: string | undefined): boolean {
  return isNameStart(ch) || isDigit(ch);
}

function isSpace(ch: string): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\r";
}

/** Describes a token for an error message. */
function describe(token: Token): string {
  return token.kind === "end" ? "end of expression" : JSON.stringify(token.text);
}

/** Parses one expression; created per compile so that errors can quote the source. */
class Parser {
  private readonly tokens: Token[] = [];
  private index = 0;
  private depth = 0;

  constructor(
    private readonly source: string,
    private readonly header: string,
  ) {}

  /** A 400 error that names the header, quotes the expression and explains the problem. */
  private fail(problem: string, hint: string = EXPR_HINT): ApiError {
    const shown = this.source.length > MAX_ECHO ? `${this.source.slice(0, MAX_ECHO)}…` : this.source;
    return new ApiError(400, `${this.header}: invalid expression ${JSON.stringify(shown)}: ${problem}; ${hint}`);
  }

  /** Splits the source into tokens; positions are 0-based offsets into the original string. */
  private tokenize(): void {
    const src = this.source;
    let i = 0;
    while (i < src.length) {
      const ch = src[i] as string;
      if (isSpace(ch)) {
        i++;
        continue;
      }
      const start = i;
      if (isDigit(ch) || (ch === "." && isDigit(src[i + 1]))) {
        while (isDigit(src[i])) i++;
        if (src[i] === ".") {
          i++;
          if (!isDigit(src[i])) {
            throw this.fail(`expected a digit after the decimal point at position ${i - 1}`, "write decimals like 1.5 or .5");
          }
          while (isDigit(src[i])) i++;
        }
        const text = src.slice(start, i);
        const value = Number(text);
        if (!Number.isFinite(value)) {
          throw this.fail(`the number at position ${start} is too large`, "use a smaller number");
        }
        this.tokens.push({ kind: "number", value, text, pos: start });
        continue;
      }
      if (isNameStart(ch)) {
        while (isNameChar(src[i])) i++;
        this.tokens.push({ kind: "name", text: src.slice(start, i), pos: start });
        continue;
      }
      if (ch === "+" || ch === "-" || ch === "*" || ch === "/" || ch === "(" || ch === ")" || ch === ",") {
        this.tokens.push({ kind: "punct", text: ch, pos: start });
        i++;
        continue;
      }
      const hint = ch === "^" ? "use pow(x, y) for powers" : EXPR_HINT;
      throw this.fail(`unexpected character ${JSON.stringify(ch)} at position ${start}`, hint);
    }
    this.tokens.push({ kind: "end", text: "", pos: src.length });
  }

  private peek(): Token {
    return this.tokens[this.index] as Token;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== "end") this.index++;
    return token;
  }

  private isPunct(token: Token, text: string): boolean {
    return token.kind === "punct" && token.text === text;
  }

  /** Consumes the given punctuation or fails naming what was expected. */
  private expect(text: ")" | "(", context: string): void {
    const token = this.next();
    if (!this.isPunct(token, text)) {
      throw this.fail(`expected "${text}" ${context} but found ${describe(token)} at position ${token.pos}`);
    }
  }

  /** Enters one level of parentheses or a function call, enforcing the depth limit. */
  private enter(pos: number): void {
    this.depth++;
    if (this.depth > MAX_EXPR_DEPTH) {
      throw this.fail(
        `nesting is deeper than ${MAX_EXPR_DEPTH} levels at position ${pos}`,
        "remove redundant parentheses or simplify the formula",
      );
    }
  }

  /** Parses the whole source into a syntax tree. */
  parse(): Node {
    this.tokenize();
    if (this.peek().kind === "end") {
      throw this.fail("the expression is empty");
    }
    const node = this.parseSum();
    const rest = this.peek();
    if (rest.kind !== "end") {
      throw this.fail(`unexpected ${describe(rest)} at position ${rest.pos}; expected an operator or the end`);
    }
    return node;
  }

  /** sum := product (("+" | "-") product)*, left-associative. */
  private parseSum(): Node {
    let left = this.parseProduct();
    for (;;) {
      const token = this.peek();
      if (token.kind !== "punct" || (token.text !== "+" && token.text !== "-")) return left;
      this.next();
      left = { kind: "binary", op: token.text, left, right: this.parseProduct() };
    }
  }

  /** product := signed (("*" | "/") signed)*, left-associative. */
  private parseProduct(): Node {
    let left = this.parseSigned();
    for (;;) {
      const token = this.peek();
      if (token.kind !== "punct" || (token.text !== "*" && token.text !== "/")) return left;
      this.next();
      left = { kind: "binary", op: token.text, left, right: this.parseSigned() };
    }
  }

  /** signed := ("+" | "-")* primary; signs are counted in a loop so long runs cannot deepen the stack. */
  private parseSigned(): Node {
    let negative = false;
    for (;;) {
      const token = this.peek();
      if (this.isPunct(token, "-")) negative = !negative;
      else if (!this.isPunct(token, "+")) break;
      this.next();
    }
    const operand = this.parsePrimary();
    return negative ? { kind: "negate", operand } : operand;
  }

  /** primary := number | "retried" | name "(" arguments ")" | "(" sum ")". */
  private parsePrimary(): Node {
    const token = this.next();
    if (token.kind === "number") {
      return { kind: "number", value: token.value };
    }
    if (token.kind === "name") {
      return this.isPunct(this.peek(), "(") ? this.parseCall(token) : this.parseVariable(token);
    }
    if (this.isPunct(token, "(")) {
      this.enter(token.pos);
      if (this.isPunct(this.peek(), ")")) {
        throw this.fail(`empty parentheses at position ${token.pos}`);
      }
      const inner = this.parseSum();
      this.expect(")", `to close the "(" at position ${token.pos}`);
      this.depth--;
      return inner;
    }
    throw this.fail(`unexpected ${describe(token)} at position ${token.pos}; expected a number, "retried", a function call or "("`);
  }

  private parseVariable(token: Token & { kind: "name" }): Node {
    if (token.text === VARIABLE) return { kind: "variable" };
    const spec = FUNCTIONS.get(token.text);
    if (spec) {
      throw this.fail(`"${spec.name}" at position ${token.pos} is a function`, `call it like ${usage(spec)}`);
    }
    throw this.fail(
      `unknown variable ${JSON.stringify(token.text)} at position ${token.pos}`,
      `the only variable is "${VARIABLE}"`,
    );
  }

  private parseCall(token: Token & { kind: "name" }): Node {
    const spec = FUNCTIONS.get(token.text);
    if (!spec) {
      const problem =
        token.text === VARIABLE
          ? `"${VARIABLE}" at position ${token.pos} is a variable, not a function`
          : `unknown function ${JSON.stringify(token.text)} at position ${token.pos}`;
      throw this.fail(problem, `the functions are ${FUNCTION_LIST}`);
    }
    const open = this.next();
    this.enter(open.pos);
    const args: Node[] = [];
    if (!this.isPunct(this.peek(), ")")) {
      args.push(this.parseSum());
      while (this.isPunct(this.peek(), ",")) {
        this.next();
        args.push(this.parseSum());
      }
    }
    this.expect(")", `to close the call to ${spec.name} at position ${token.pos}`);
    this.depth--;
    if (args.length < spec.minArgs || args.length > spec.maxArgs) {
      const wanted =
        spec.maxArgs === Infinity
          ? `at least ${spec.minArgs} argument${spec.minArgs === 1 ? "" : "s"}`
          : `exactly ${spec.maxArgs} argument${spec.maxArgs === 1 ? "" : "s"}`;
      throw this.fail(
        `${spec.name} at position ${token.pos} takes ${wanted} but was given ${args.length}`,
        `call it like ${usage(spec)}`,
      );
    }
    return { kind: "call", fn: spec, args };
  }
}

/** Applies one arithmetic operator. */
function applyBinary(op: BinaryOp, left: number, right: number): number {
  switch (op) {
    case "+":
      return left + right;
    case "-":
      return left - right;
    case "*":
      return left * right;
    case "/":
      return left / right;
  }
}

/** Evaluates a syntax tree; its depth is bounded by the length and nesting limits. */
function evaluateNode(node: Node, retried: number): number {
  switch (node.kind) {
    case "number":
      return node.value;
    case "variable":
      return retried;
    case "negate":
      return -evaluateNode(node.operand, retried);
    case "binary":
      return applyBinary(node.op, evaluateNode(node.left, retried), evaluateNode(node.right, retried));
    case "call":
      return node.fn.apply(node.args.map((arg) => evaluateNode(arg, retried)));
  }
}

/**
 * Compiles an `Upstash-Retry-Delay` expression such as `1000 * (1 + retried)`.
 * Throws ApiError(400) naming `header` when the expression is empty, too long, too deep or not valid.
 */
export function compileRetryDelay(source: string, header = "Upstash-Retry-Delay"): RetryDelayExpr {
  if (source.length > MAX_EXPR_LENGTH) {
    throw new ApiError(
      400,
      `${header}: the expression is ${source.length} characters long, more than the limit of ${MAX_EXPR_LENGTH}; ` +
        "shorten it, like 1000 * (1 + retried)",
    );
  }
  const root = new Parser(source, header).parse();
  return {
    source,
    evaluate: (retried: number) => evaluateNode(root, retried),
  };
}

/**
 * Turns an expression's value into a usable delay in milliseconds:
 * NaN, ±Infinity or negative → 0; above `maxDelayMs` → `maxDelayMs`; otherwise rounded down to a whole ms.
 */
export function retryDelayMs(expr: RetryDelayExpr, retried: number, maxDelayMs: number): number {
  const value = expr.evaluate(retried);
  if (!Number.isFinite(value) || value <= 0) return 0;
  if (value > maxDelayMs) return maxDelayMs;
  return Math.floor(value);
}
