import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

/**
 * Parses a command's arguments with `node:util` parseArgs. Every problem
 * becomes a `UsageError` (exit code 2). `--zstd` may stand alone or carry a
 * level (`--zstd=9`); parseArgs has no optional values, so a bare `--zstd`
 * is rewritten to the default level first.
 */
export function parseCommandArgs(
  args: string[],
  options: Options,
  positionals: { min: number; max: number; usage: string },
): ParsedArgs {
  const rewritten = args.map((a) =>
    a === "--zstd" && "zstd" in options ? "--zstd=3" : a
  );
  let parsed;
  try {
    parsed = parseArgs({
      args: rewritten,
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(
      `${(error as Error).message} (usage: ${positionals.usage})`,
    );
  }
  const count = parsed.positionals.length;
  if (count < positionals.min || count > positionals.max) {
    throw new UsageError(
      `expected ${
        describeCount(positionals)
      } arguments, got ${count} (usage: ${positionals.usage})`,
    );
  }
  return {
    values: parsed.values as ParsedArgs["values"],
    positionals: parsed.positionals,
  };
}

function describeCount({ min, max }: { min: number; max: number }): string {
  if (min === max) return String(min);
  if (max === Infinity) return `at least ${min}`;
  return `${min} to ${max}`;
}

/** Parses `--zstd=LEVEL` (1..19); undefined when the option is absent. */
export function parseZstdLevel(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const level = Number(value);
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw new UsageError(
      `--zstd level must be an integer from 1 to 19, got "${value}"`,
    );
  }
  return level;
}

/** A byte count with an optional K, M, G or T suffix (powers of 1024). */
export function parseSize(value: string, what: string): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(value);
  if (!m) {
    throw new UsageError(
      `${what} must be a number of bytes (suffix K, M, G allowed), got "${value}"`,
    );
  }
  const mult = {
    "": 1,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
    T: 1024 ** 4,
  }[m[2]!.toUpperCase()]!;
  return Number(m[1]) * mult;
}
