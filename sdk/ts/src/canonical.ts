/**
 * The canonical signing payload of a PCS (DESIGN §2, docs/protocol.md "Canonical signing payload"):
 * round9 on the four signed floats, then RFC 8785 (JSON Canonicalization Scheme) into UTF-8 bytes.
 */

import { PCSError } from "./errors";

const TEN_POW_9 = 1_000_000_000n;

/**
 * The decimal with 9 fractional digits nearest to x's exact binary value, ties to even, read back as
 * a double: Python's `float(format(x, ".9f"))`, Go's `strconv.FormatFloat(x, 'f', 9, 64)`.
 * `Number.prototype.toFixed` is not used: it rounds ties away from zero.
 */
export function round9(x: number): number {
  return Number(format9(x));
}

/** x's exact binary value rounded to 9 fractional digits (ties to even), as a decimal string. */
export function format9(x: number): string {
  if (typeof x !== "number" || !Number.isFinite(x)) {
    throw new PCSError(`round9 needs a finite number, got ${String(x)}`);
  }
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const negative = hi >>> 31 === 1;
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exponent: number;
  if (biased === 0) {
    exponent = -1074; // subnormal: no implicit bit
  } else {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  // |x| = mantissa * 2^exponent exactly; scaled = |x| * 10^9 rounded half to even.
  let scaled: bigint;
  if (exponent >= 0) {
    scaled = (mantissa << BigInt(exponent)) * TEN_POW_9;
  } else {
    const numerator = mantissa * TEN_POW_9;
    const denominator = 1n << BigInt(-exponent);
    scaled = numerator / denominator;
    const twiceRemainder = (numerator - scaled * denominator) * 2n;
    if (twiceRemainder > denominator || (twiceRemainder === denominator && (scaled & 1n) === 1n)) {
      scaled += 1n;
    }
  }
  const digits = scaled.toString().padStart(10, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -9)}.${digits.slice(-9)}`;
}

/**
 * RFC 8785 §3.2.2.3: the ECMAScript (ES2015+) Number::toString of a finite double; -0 is "0".
 * JavaScript's own String(number) is that algorithm (shortest round-trip digits; plain notation for
 * 1e-7 < |x| < 1e21, exponent form "1e+21" / "1e-7" outside).
 */
export function serializeNumber(x: number): string {
  if (!Number.isFinite(x)) {
    throw new PCSError(`RFC 8785 has no form for ${String(x)}`);
  }
  return Object.is(x, -0) ? "0" : String(x);
}

/** RFC 8785 §3.2.2.2 string: minimal escaping; a lone surrogate (not valid Unicode) is refused. */
export function serializeString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (next < 0xdc00 || next > 0xdfff) {
        throw new PCSError("string contains a lone surrogate (not valid Unicode)");
      }
      out += s[i] + s[i + 1];
      i++;
      continue;
    }
    if (c >= 0xdc00 && c <= 0xdfff) {
      throw new PCSError("string contains a lone surrogate (not valid Unicode)");
    }
    switch (c) {
      case 0x22:
        out += '\\"';
        break;
      case 0x5c:
        out += "\\\\";
        break;
      case 0x08:
        out += "\\b";
        break;
      case 0x09:
        out += "\\t";
        break;
      case 0x0a:
        out += "\\n";
        break;
      case 0x0c:
        out += "\\f";
        break;
      case 0x0d:
        out += "\\r";
        break;
      default:
        out += c < 0x20 ? `\\u${c.toString(16).padStart(4, "0")}` : s[i];
    }
  }
  return out + '"';
}

/** A JSON value the canonicaliser accepts; bigint serialises as its decimal digits (for a u64 seed). */
export type JSONValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly JSONValue[]
  | { readonly [key: string]: JSONValue | undefined };

/** Compare two strings by their UTF-16 code units (RFC 8785 §3.2.3). */
function compareUTF16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0; // JavaScript compares strings by UTF-16 code units
}

/** RFC 8785 canonical JSON text of a value (object members sorted, undefined members left out). */
export function canonicalize(value: JSONValue): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      return serializeNumber(value);
    case "bigint":
      return value.toString();
    case "string":
      return serializeString(value);
    case "object":
      break;
    default:
      throw new PCSError(`cannot canonicalise a ${typeof value}`);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item: JSONValue) => canonicalize(item)).join(",")}]`;
  }
  const obj = value as { readonly [key: string]: JSONValue | undefined };
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort(compareUTF16);
  return `{${keys.map((k) => `${serializeString(k)}:${canonicalize(obj[k] as JSONValue)}`).join(",")}}`;
}

/** UTF-8 bytes of the canonical JSON text of a value. */
export function canonicalBytes(value: JSONValue): Buffer {
  return Buffer.from(canonicalize(value), "utf8");
}
