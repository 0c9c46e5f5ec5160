import { parseCommandArgs } from "./args.ts";
import { openChain } from "./chain.ts";
import type { Command } from "./types.ts";
import { extractChain } from "../chain/extract.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import { VM_CONFIG_NAME } from "../backup/backup.ts";
import { resumeScript } from "../backup/command_line.ts";
import type { VmDescription } from "../backup/inventory.ts";
import { parsePveConfig } from "../proxmox/config.ts";
import { PVE_CONFIG_NAME } from "../proxmox/format.ts";
import { planVm, type VmPlan } from "../proxmox/plan.ts";
import { findOvmf, proxmoxScript, qemuValue } from "../proxmox/qemu_args.ts";
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
    const bases = (values.base as string[] | undefined) ?? [];
    const chain = await openChain([positionals[0]!, ...bases], ctx, "restore");
    const reader = chain.readers[0]!;
    let desc: VmDescription | undefined;
    let plan: VmPlan | undefined;
    let withState = false;
    try {
      const { configs, devices } = reader.header;
      const config = configs.find((c) => c.name === VM_CONFIG_NAME);
      const pveConfig = configs.find((c) => c.name === PVE_CONFIG_NAME);
      withState = devices.some((d) => d.name === VMA_VMSTATE_NAME);
      if (config !== undefined) {
        try {
          desc = JSON.parse(new TextDecoder().decode(config.data));
        } catch {
          throw new Error(
            `Cannot restore: ${VM_CONFIG_NAME} in the archive is not valid JSON`,
          );
        }
      } else if (pveConfig !== undefined) {
        // A Proxmox backup: its config is checked before anything is written.
        plan = planVm(parsePveConfig(pveConfig.data), {
          devices: devices.filter((d) => d.name !== VMA_VMSTATE_NAME),
          configs: configs.map((c) => c.name),
        });
        if (withState) {
          plan.unmapped.push("vmstate: RAM state not loaded (cold boot)");
        }
        qemuValue(resolve(positionals[1]!), "the target directory");
      }
      await extractChain(chain.readers, chain.links, positionals[1]!, {
        signal: ctx.signal,
      });
    } finally {
      await chain.close();
    }
    const dir = await Deno.realPath(positionals[1]!);
    let script: string;
    if (desc !== undefined) {
      script = resumeScript(desc, dir, withState);
    } else if (plan !== undefined) {
      const firmware = plan.efi === null ? null : findOvmf(plan.efi.efitype);
      script = proxmoxScript(plan, dir, firmware);
      for (const u of plan.unmapped) {
        ctx.stderr.line(`restore: not mapped from ${PVE_CONFIG_NAME}: ${u}`);
      }
    } else {
      ctx.stderr.line(
        `restore: extracted into ${dir}; no ${VM_CONFIG_NAME} or ${PVE_CONFIG_NAME}, so no resume.sh`,
      );
      return;
    }
    await Deno.writeTextFile(`${dir}/resume.sh`, script, {
      mode: 0o755,
      createNew: true,
    });
    ctx.out.text(script);
    ctx.stderr.line(
      `restore: extracted into ${dir}; start the VM with ${dir}/resume.sh`,
    );
  },
};
