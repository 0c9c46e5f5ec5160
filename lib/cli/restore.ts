import { parseCommandArgs, parseSize } from "./args.ts";
import { openChain } from "./chain.ts";
import { runLiveRestore } from "./restore_live.ts";
import type { Command } from "./types.ts";
import { UsageError } from "../errors.ts";
import { extractChain } from "../chain/extract.ts";
import { VM_CONFIG_NAME } from "../backup/backup.ts";
import { PVE_CONFIG_NAME } from "../proxmox/format.ts";
import {
  planRestore,
  type RestorePlan,
  restoreScript,
  RESUME_SCRIPT,
  unmappedNotes,
} from "../restore/plan.ts";
import { writeFileExclusive } from "../io/safe_file.ts";
import { printable } from "../text/escape.ts";
import { resolve } from "node:path";

const USAGE =
  "vmabak restore [--live [--speed BYTES_PER_S]] ARCHIVE [--base PREV]... TARGETDIR";

export const restoreCommand: Command = {
  name: "restore",
  summary:
    "extract a VM's disks and state and write resume.sh, the QEMU command line that brings it back (--live: boot it now, copy in the background)",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      base: { type: "string", multiple: true },
      live: { type: "boolean" },
      speed: { type: "string" },
    }, {
      min: 2,
      max: 2,
      usage: USAGE,
    });
    const target = positionals[1]!;
    const dir = resolve(target);
    const bases = (values.base as string[] | undefined) ?? [];
    if (values.speed !== undefined && values.live !== true) {
      throw new UsageError(`--speed goes with --live (usage: ${USAGE})`);
    }
    if (values.live === true) {
      const speed = values.speed === undefined
        ? undefined
        : parseSize(values.speed as string, "--speed");
      await runLiveRestore(ctx, positionals[0]!, bases, dir, speed);
      return;
    }
    const chain = await openChain([positionals[0]!, ...bases], ctx, "restore");
    let plan: RestorePlan;
    try {
      // Everything is checked before anything is written.
      plan = planRestore(chain.readers[0]!.header, dir);
      await extractChain(chain.readers, chain.links, target, {
        signal: ctx.signal,
      });
    } finally {
      await chain.close();
    }
    const script = restoreScript(plan, dir);
    if (script === null) {
      ctx.stderr.line(
        `restore: extracted into ${
          printable(dir)
        }; no ${VM_CONFIG_NAME} or ${PVE_CONFIG_NAME}, so no ${RESUME_SCRIPT}`,
      );
      return;
    }
    for (const note of unmappedNotes(plan)) {
      ctx.stderr.line(`restore: ${note}`);
    }
    await writeFileExclusive(
      `${dir}/${RESUME_SCRIPT}`,
      new TextEncoder().encode(script),
      { what: "script", mode: 0o700 },
    );
    ctx.out.text(script);
    ctx.stderr.line(
      `restore: extracted into ${printable(dir)}; start the VM with ${
        printable(`${dir}/${RESUME_SCRIPT}`)
      }`,
    );
  },
};
