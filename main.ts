/**
 * vmabak: live backups of running QEMU VMs into Proxmox VMA archives.
 *
 * This file only parses the command name, wires standard streams and signals
 * to the chosen command, prints errors and decides the exit code:
 * 0 ok, 1 failure, 2 usage error.
 */
import { COMMANDS } from "./lib/cli/commands.ts";
import type { CommandContext, TextSink } from "./lib/cli/types.ts";
import { CancelledError } from "./lib/errors.ts";
import { VERSION } from "./lib/version.ts";
import { failureOutcome } from "./lib/cli/outcome.ts";

const encoder = new TextEncoder();

function textSink(file: { writeSync(p: Uint8Array): number }): TextSink {
  const writeAll = (bytes: Uint8Array) => {
    let done = 0;
    while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
  };
  return {
    line: (text) => writeAll(encoder.encode(text + "\n")),
    text: (text) => writeAll(encoder.encode(text)),
  };
}

function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `vmabak ${VERSION}: live backups of running QEMU VMs into Proxmox VMA archives`,
    "",
    "usage: vmabak COMMAND [OPTIONS] ...",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run 'vmabak COMMAND --help' for a command's options.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const stderr = textSink(Deno.stderr);
  const out = textSink(Deno.stdout);
  const [name, ...args] = argv;
  if (
    name === undefined || name === "--help" || name === "-h" || name === "help"
  ) {
    (name === undefined ? stderr : out).line(helpText());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    out.line(`vmabak ${VERSION}`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    stderr.line(`vmabak: unknown command "${name}" (try 'vmabak --help')`);
    return 2;
  }
  if (args.includes("--help") || args.includes("-h")) {
    out.line(`usage: ${command.usage}`);
    return 0;
  }

  const controller = new AbortController();
  const onSignal = (signal: Deno.Signal) => () => {
    if (!controller.signal.aborted) {
      controller.abort(
        new CancelledError(`Cannot continue: interrupted by ${signal}`),
      );
    }
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => {
    const handler = onSignal(s);
    Deno.addSignalListener(s, handler);
    return [s, handler] as const;
  });

  const ctx: CommandContext = {
    args,
    stdout: {
      async write(chunk) {
        let done = 0;
        while (done < chunk.length) {
          done += await Deno.stdout.write(chunk.subarray(done));
        }
      },
    },
    stderr,
    out,
    stdin: Deno.stdin.readable,
    signal: controller.signal,
    stderrIsTerminal: Deno.stderr.isTerminal(),
  };

  try {
    await command.run(ctx);
    return 0;
  } catch (error) {
    const err = error instanceof Error ? error : new Error(String(error));
    if (Deno.env.get("VMABAK_DEBUG")) stderr.line(err.stack ?? err.message);
    const outcome = failureOutcome(err);
    stderr.line(`vmabak ${name}: ${outcome.line}`);
    return outcome.code;
  } finally {
    for (const [s, handler] of handlers) Deno.removeSignalListener(s, handler);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
