/**
 * How a command's failure is told: exit code 2 and the message for a usage
 * error, else exit code 1 and one line, never a stack trace. `main.ts` prints
 * it; tests that run commands in-process use the same rule.
 */
import { UsageError } from "../errors.ts";
import { oneLine } from "../text/escape.ts";

export interface FailureOutcome {
  code: 1 | 2;
  /** The line to print, without the `vmabak COMMAND: ` prefix. */
  line: string;
}

export function failureOutcome(error: unknown): FailureOutcome {
  const err = error instanceof Error ? error : new Error(String(error));
  if (err instanceof UsageError) return { code: 2, line: oneLine(err.message) };
  if (
    err.name === "BrokenPipe" || (err as { code?: string }).code === "EPIPE"
  ) {
    return {
      code: 1,
      line: "Cannot write output: the pipe was closed by the reader",
    };
  }
  // Names from archives are escaped where they are put in messages; escaping
  // the whole message again keeps any that slipped through on one line.
  return { code: 1, line: oneLine(err.message.trimEnd()) || err.name };
}
