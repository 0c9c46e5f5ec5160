import type { ByteSink } from "../io/sink.ts";

/** What a command gets from `main.ts`: its arguments and where to write. */
export interface CommandContext {
  /** The arguments after the command name. */
  args: string[];
  /** Binary output (archives written to `-`, config bytes). */
  stdout: ByteSink;
  /** Text output meant for people: progress and messages. */
  stderr: TextSink;
  /** Text output on stdout: listings, JSON. */
  out: TextSink;
  /** Standard input, for archives read from `-`. */
  stdin: ReadableStream<Uint8Array>;
  /** Aborted on SIGINT or SIGTERM. */
  signal: AbortSignal;
  /** Whether stderr is a terminal (progress bars) or not (plain lines). */
  stderrIsTerminal: boolean;
}

export type { ByteSink } from "../io/sink.ts";

export interface TextSink {
  /** Writes one line; a newline is added. */
  line(text: string): void;
  /** Writes text as it is (progress bars use `\r`). */
  text(text: string): void;
}

/** One subcommand of the CLI. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<void>;
}
