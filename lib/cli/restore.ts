import { openArchiveReader } from "./archive.ts";
import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { extractArchive, planExtract } from "../vma/extract.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import { VM_CONFIG_NAME } from "../backup/backup.ts";
import { resumeScript } from "../backup/command_line.ts";
import { parseVmDescription } from "../backup/description.ts";
import type { VmDescription } from "../backup/inventory.ts";
import { writeFileExclusive } from "../io/safe_file.ts";
import { printable, qemuOptValue } from "../text/escape.ts";
import { resolve } from "node:path";

const USAGE = "vmabak restore ARCHIVE TARGETDIR";

export const restoreCommand: Command = {
  name: "restore",
  summary:
    "extract a VM's disks and state and write resume.sh, the QEMU command line that brings it back",
  usage: USAGE,
  async run(ctx) {
    const { positionals } = parseCommandArgs(ctx.args, {}, {
      min: 2,
      max: 2,
      usage: USAGE,
    });
    const target = positionals[1]!;
    const reader = await openArchiveReader(positionals[0]!, ctx);
    // Everything is checked before anything is written.
    let desc: VmDescription | undefined;
    let script = "";
    try {
      planExtract(reader);
      const config = reader.header.configs.find((c) =>
        c.name === VM_CONFIG_NAME
      );
      const dir = resolve(target);
      if (config !== undefined) {
        qemuOptValue(dir, "target directory");
        if (reader.header.configs.some((c) => c.name === "resume.sh")) {
          throw new Error(
            "Cannot restore: the archive holds a config named resume.sh, the file restore writes",
          );
        }
        desc = parseVmDescription(config.data);
        const devices = new Set(reader.header.devices.map((d) => d.name));
        for (const d of desc.disks) {
          if (!devices.has(d.name)) {
            throw new Error(
              `Cannot use the VM description: disk "${
                printable(d.name, 80)
              }" is not in the archive`,
            );
          }
        }
        const withState = reader.header.devices.some((d) =>
          d.name === VMA_VMSTATE_NAME
        );
        script = resumeScript(desc, dir, withState);
      }
    } catch (error) {
      await reader.close();
      throw error;
    }
    await extractArchive(reader, target, { signal: ctx.signal });
    const dir = resolve(target);
    if (desc === undefined) {
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
