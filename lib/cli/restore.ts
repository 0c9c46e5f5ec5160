import { parseCommandArgs } from "./args.ts";
import { openChain } from "./chain.ts";
import type { Command } from "./types.ts";
import { extractChain } from "../chain/extract.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import { VM_CONFIG_NAME } from "../backup/backup.ts";
import { resumeScript } from "../backup/command_line.ts";
import type { VmDescription } from "../backup/inventory.ts";

const USAGE = "vmabak restore ARCHIVE [--base PREV]... TARGETDIR";

export const restoreCommand: Command = {
  name: "restore",
  summary:
    "extract a VM's disks and state and write resume.sh, the QEMU command line that brings it back",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      base: { type: "string", multiple: true },
    }, {
      min: 2,
      max: 2,
      usage: USAGE,
    });
    const bases = (values.base as string[] | undefined) ?? [];
    const chain = await openChain([positionals[0]!, ...bases], ctx, "restore");
    const reader = chain.readers[0]!;
    let desc: VmDescription | undefined;
    let withState = false;
    try {
      const config = reader.header.configs.find((c) =>
        c.name === VM_CONFIG_NAME
      );
      if (config !== undefined) {
        try {
          desc = JSON.parse(new TextDecoder().decode(config.data));
        } catch {
          throw new Error(
            `Cannot restore: ${VM_CONFIG_NAME} in the archive is not valid JSON`,
          );
        }
      }
      withState = reader.header.devices.some((d) =>
        d.name === VMA_VMSTATE_NAME
      );
      await extractChain(chain.readers, chain.links, positionals[1]!, {
        signal: ctx.signal,
      });
    } finally {
      await chain.close();
    }
    const dir = await Deno.realPath(positionals[1]!);
    if (desc === undefined) {
      ctx.stderr.line(
        `restore: extracted into ${dir}; no ${VM_CONFIG_NAME} (not written by vmabak backup), so no resume.sh`,
      );
      return;
    }
    const script = resumeScript(desc, dir, withState);
    await Deno.writeTextFile(`${dir}/resume.sh`, script, { mode: 0o755 });
    ctx.out.text(script);
    ctx.stderr.line(
      `restore: extracted into ${dir}; start the VM with ${dir}/resume.sh`,
    );
  },
};
