/**
 * The one place text from untrusted sources (archives, VM descriptions, QEMU
 * replies) is made safe for where it goes: a terminal or log line
 * (`printable`), a POSIX shell script (`shellQuote`), a QEMU `key=value,...`
 * option (`qemuOptValue`, `checkQemuId`).
 */

/** A value that cannot be made safe for where it was meant to go. */
export class UnsafeTextError extends Error {
  override name = "UnsafeTextError";
  constructor(
    readonly what: string,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`Cannot use ${what} ${printable(value, 80)}: ${reason}`);
  }
}

// C0 and C1 controls, DEL, line/paragraph separators, bidi overrides and isolates.
const UNPRINTABLE =
  // deno-lint-ignore no-control-regex
  /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/gu;

/**
 * `text` with every control character (and `\`) escaped as `\n`, `\t`,
 * `\xHH` or `\u{H}`, so it prints as one line and cannot move the cursor,
 * clear the screen or fake another line. Longer than `max` characters: cut,
 * with `...` after it.
 */
export function printable(text: string, max = Infinity): string {
  const cut = text.length > max ? text.slice(0, max) : text;
  const escaped = cut.replace(UNPRINTABLE, escapeOne);
  return cut.length < text.length ? `${escaped}...` : escaped;
}

const CONTROLS =
  // deno-lint-ignore no-control-regex
  /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/**
 * `printable` for whole messages that may already hold escaped names: control
 * characters are escaped, backslashes left alone (the last guard in main.ts).
 */
export function oneLine(text: string): string {
  return text.replace(CONTROLS, escapeOne);
}

function escapeOne(c: string): string {
  if (c === "\\") return "\\\\";
  if (c === "\n") return "\\n";
  if (c === "\r") return "\\r";
  if (c === "\t") return "\\t";
  const code = c.codePointAt(0)!;
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u{${code.toString(16)}}`;
}

/**
 * One word for a POSIX shell: as it is when it holds only characters no
 * shell treats specially, else in single quotes (a `'` inside becomes
 * `'\''`). Newlines and every other byte are safe inside single quotes; NUL
 * cannot be passed to a program, so it is refused.
 */
export function shellQuote(word: string): string {
  if (word.includes("\0")) {
    throw new UnsafeTextError("shell word", word, "it holds a NUL character");
  }
  return /^[A-Za-z0-9_\/.,:=+@%-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * A value for QEMU's `key=value,key=value` options (`-blockdev`, `-device`,
 * `-machine`, `-qmp unix:PATH,...`): every `,` doubled, as QEMU's option
 * parser reads `,,` as one comma inside a value, so the value can never end
 * early and add an option. Control characters are refused.
 */
export function qemuOptValue(value: string, what: string): string {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new UnsafeTextError(what, value, "it holds a control character");
  }
  return value.replaceAll(",", ",,");
}

/** QEMU's rule for ids and node names: a letter, then letters, digits, `-`, `.`, `_`. */
export const QEMU_ID = /^[A-Za-z][A-Za-z0-9._-]{0,126}$/;

/** Returns `value` when it is a well-formed QEMU id or node name, else throws. */
export function checkQemuId(value: string, what: string): string {
  if (!QEMU_ID.test(value)) {
    throw new UnsafeTextError(
      what,
      value,
      "not a QEMU id (a letter, then letters, digits, '-', '.', '_'; at most 127)",
    );
  }
  return value;
}
