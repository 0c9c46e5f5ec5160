import { parseCommandArgs } from "./args.ts";
import { openChain } from "./chain.ts";
import type { Command } from "./types.ts";
import { extractChain } from "../chain/extract.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import { planExtract } from "../vma/extract.ts";
import { VM_CONFIG_NAME } from "../backup/backup.ts";
import { resumeScript } from "../backup/command_line.ts";
import { parseVmDescription } from "../backup/description.ts";
import { writeFileExclusive } from "../io/safe_file.ts";
import { printable, qemuOptValue } from "../text/escape.ts";
import { resolve } from "node:path";

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
    const target = positionals[1]!;
    const dir = resolve(target);
    const bases = (values.base as string[] | undefined) ?? [];
    const chain = await openChain([positionals[0]!, ...bases], ctx, "restore");
    const header = chain.readers[0]!.header;
    let script: string | undefined;
    try {
      // Everything is checked before anything is written.
      planExtract(header);
      const config = header.configs.find((c) => c.name === VM_CONFIG_NAME);
      if (config !== undefined) {
        qemuOptValue(dir, "target directory");
        if (header.configs.some((c) => c.name === "resume.sh")) {
          throw new Error(
            "Cannot restore: the archive holds a config named resume.sh, the file restore writes",
          );
        }
        const desc = parseVmDescription(config.data);
        const devices = new Set(header.devices.map((d) => d.name));
        for (const d of desc.disks) {
          if (!devices.has(d.name)) {
            throw new Error(
              `Cannot use the VM description: disk "${
                printable(d.name, 80)
              }" is not in the archive`,
            );
          }
        }
        const withState = header.devices.some((d) =>
          d.name === VMA_VMSTATE_NAME
        );
        script = resumeScript(desc, dir, withState);
      }
      await extractChain(chain.readers, chain.links, target, {
        signal: ctx.signal,
      });
    } finally {
      await chain.close();
    }
    if (script === undefined) {
      ctx.stderr.line(
        `restore: extracted into ${
          printable(dir)
        }; no ${VM_CONFIG_NAME} (not written by vmabak backup), so no resume.sh`,
      );
      return;
    }
    await writeFileExclusive(
      `${dir}/resume.sh`,
      new TextEncoder().encode(script),
      { what: "script", mode: 0o700 },
    );
    ctx.out.text(script);
    ctx.stderr.line(
      `restore: extracted into ${printable(dir)}; start the VM with ${
        printable(`${dir}/resume.sh`)
      }`,
    );
  },
};
