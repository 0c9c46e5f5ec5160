import { readArchiveHeader } from "./archive.ts";
import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { VmaError } from "../vma/errors.ts";
import { printable } from "../text/escape.ts";

const USAGE = "vmabak config ARCHIVE [-c NAME]";

export const configCommand: Command = {
  name: "config",
  summary: "print one config file stored in an archive",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      config: { type: "string", short: "c" },
    }, {
      min: 1,
      max: 1,
      usage: USAGE,
    });
    const header = await readArchiveHeader(positionals[0]!, ctx);
    const configs = header.configs;
    const wanted = values.config as string | undefined;
    const config = wanted !== undefined
      ? configs.find((c) => c.name === wanted)
      : configs.length === 1
      ? configs[0]
      : configs.find((c) => c.name === "qemu-server.conf");
    if (config === undefined) {
      const names = configs.map((c) => printable(c.name, 80)).join(", ") ||
        "none";
      throw new VmaError(
        `Cannot print config ${
          printable(wanted ?? "qemu-server.conf", 80)
        }: not in the archive (configs: ${names})`,
      );
    }
    await ctx.stdout.write(config.data);
  },
};
