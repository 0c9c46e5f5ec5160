/** `backup --qga SOCKET [--qga-required] [--qga-timeout SECONDS]`: fs-freeze around the instant. */
import { UsageError } from "../errors.ts";

export const QGA_OPTIONS = {
  qga: { type: "string" },
  "qga-required": { type: "boolean" },
  "qga-timeout": { type: "string" },
} as const;

export const QGA_USAGE =
  "[--qga SOCKET [--qga-required] [--qga-timeout SECONDS]]";

/** Default wait for each guest agent command, the freeze included. */
export const QGA_DEFAULT_TIMEOUT_S = 10;

export function parseQgaArgs(
  values: Record<string, unknown>,
): { qga?: { path: string; timeoutMs: number; required: boolean } } {
  const path = values.qga as string | undefined;
  if (path === undefined) {
    if (values["qga-required"] || values["qga-timeout"] !== undefined) {
      throw new UsageError(
        "--qga-required and --qga-timeout need --qga SOCKET",
      );
    }
    return {};
  }
  const seconds = Number(values["qga-timeout"] ?? QGA_DEFAULT_TIMEOUT_S);
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new UsageError(
      "--qga-timeout must be a number of seconds from 0 to 3600",
    );
  }
  return {
    qga: {
      path,
      timeoutMs: seconds * 1000,
      required: values["qga-required"] === true,
    },
  };
}
