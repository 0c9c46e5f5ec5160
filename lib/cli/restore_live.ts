import type { CommandContext } from "./types.ts";
import { UsageError } from "../errors.ts";
import { liveRestore } from "../restore/live.ts";
import { progressLine } from "../restore/stream.ts";
import { printable } from "../text/escape.ts";

/** `restore --live ARCHIVE DIR`: prints where the VM is and the stream's progress. */
export async function runLiveRestore(
  ctx: CommandContext,
  archive: string,
  bases: string[],
  dir: string,
  speed?: number,
): Promise<void> {
  if (archive === "-" || bases.includes("-")) {
    throw new UsageError(
      "restore --live serves the archive while the VM runs: it needs a file, not standard input",
    );
  }
  let last = "";
  const result = await liveRestore(archive, dir, {
    bases,
    ...(speed !== undefined ? { speed } : {}),
    signal: ctx.signal,
    log: (line) => ctx.stderr.line(`restore: ${line}`),
    progress: (p) => {
      const line = progressLine(p);
      if (line === last) return;
      last = line;
      if (ctx.stderrIsTerminal) ctx.stderr.text(`\r\x1b[Krestore: ${line}`);
      else ctx.stderr.line(`restore: ${line}`);
    },
  });
  if (ctx.stderrIsTerminal) ctx.stderr.line("");
  ctx.stderr.line(
    `restore: done in ${
      (result.totalMs / 1000).toFixed(1)
    } s (the VM ran after ${
      (result.runningMs / 1000).toFixed(1)
    } s); it runs from ${
      printable(dir)
    } alone, the archive is no longer needed`,
  );
  ctx.out.line(`pid ${result.pid}`);
  ctx.out.line(`qmp ${result.qmpSocket}`);
}
