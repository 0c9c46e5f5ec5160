import { parseCommandArgs } from "./args.ts";
import { openChain } from "./chain.ts";
import type { Command } from "./types.ts";
import { extractChain } from "../chain/extract.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import { planExtract } from "../vma/extract.ts";
import { VM_CONFIG_NAME } from "../backup/backup.ts";
import { resumeScript } from "../backup/command_line.ts";
import { parseVmDescription } from "../backup/description.ts";
import type { VmDescription } from "../backup/inventory.ts";
import { parsePveConfig } from "../proxmox/config.ts";
import { PVE_CONFIG_NAME } from "../proxmox/format.ts";
import { planVm, type VmPlan } from "../proxmox/plan.ts";
import { findOvmf, proxmoxScript } from "../proxmox/qemu_args.ts";
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
    const { configs, devices } = chain.readers[0]!.header;
    const withState = devices.some((d) => d.name === VMA_VMSTATE_NAME);
    let desc: VmDescription | undefined;
    let plan: VmPlan | undefined;
    try {
      // Everything is checked before anything is written.
      planExtract(chain.readers[0]!.header);
      const config = configs.find((c) => c.name === VM_CONFIG_NAME);
      const pveConfig = configs.find((c) => c.name === PVE_CONFIG_NAME);
      if (
        (config !== undefined || pveConfig !== undefined) &&
        configs.some((c) => c.name === "resume.sh")
      ) {
        throw new Error(
          "Cannot restore: the archive holds a config named resume.sh, the file restore writes",
        );
      }
      if (config !== undefined) {
        qemuOptValue(dir, "target directory");
        desc = parseVmDescription(config.data);
        const names = new Set(devices.map((d) => d.name));
        for (const d of desc.disks) {
          if (!names.has(d.name)) {
            throw new Error(
              `Cannot use the VM description: disk "${
                printable(d.name, 80)
              }" is not in the archive`,
            );
          }
        }
        resumeScript(desc, dir, withState); // renders, or refuses, now
      } else if (pveConfig !== undefined) {
        // A Proxmox backup: its config is checked before anything is written.
        plan = planVm(parsePveConfig(pveConfig.data), {
          devices: devices.filter((d) => d.name !== VMA_VMSTATE_NAME),
          configs: configs.map((c) => c.name),
        });
        if (withState) {
          plan.unmapped.push("vmstate: RAM state not loaded (cold boot)");
        }
        qemuOptValue(dir, "target directory");
      }
      await extractChain(chain.readers, chain.links, target, {
        signal: ctx.signal,
      });
    } finally {
      await chain.close();
    }
    let script: string;
    if (desc !== undefined) {
      script = resumeScript(desc, dir, withState);
    } else if (plan !== undefined) {
      const firmware = plan.efi === null ? null : findOvmf(plan.efi.efitype);
      script = proxmoxScript(plan, dir, firmware);
      for (const u of plan.unmapped) {
        ctx.stderr.line(
          `restore: not mapped from ${PVE_CONFIG_NAME}: ${printable(u)}`,
        );
      }
    } else {
      ctx.stderr.line(
        `restore: extracted into ${
          printable(dir)
        }; no ${VM_CONFIG_NAME} or ${PVE_CONFIG_NAME}, so no resume.sh`,
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
