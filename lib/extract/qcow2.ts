/**
 * `extract ARCHIVE DIR --format qcow2`: each disk into a new qcow2 image
 * (created by `qemu-img`, 0600), written through `qemu-nbd` with vmabak's
 * NBD client, so holes stay unallocated and no raw copy is made first.
 */
import {
  createExclusive,
  makePrivateDir,
  makePrivateTempDir,
  writeFileExclusive,
} from "../io/safe_file.ts";
import { VmaError } from "../vma/errors.ts";
import { planExtract } from "../vma/extract.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { VmaReader } from "../vma/reader.ts";
import { extractToNbd } from "./to_nbd.ts";

export interface Qcow2Result {
  files: string[];
  skipped: string[];
}

async function tool(cmd: string, args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" })
      .output();
  } catch (error) {
    throw new VmaError(`Cannot run ${cmd}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim().split("\n")[0];
    throw new VmaError(`Cannot run ${cmd}: ${why}`);
  }
}

/**
 * Makes `dir` (which must not exist, 0700), writes the configs, creates one
 * qcow2 per disk and fills it through a private `qemu-nbd` per disk. The
 * vmstate stream is not a disk: it is skipped (extract to raw files for it).
 */
export async function extractQcow2(
  reader: VmaReader,
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<Qcow2Result> {
  const header = reader.header;
  const rawNames = planExtract(header);
  const disks = header.devices
    .map((d, i) => ({ d, file: rawNames[i]!.replace(/\.raw$/, ".qcow2") }))
    .filter(({ d }) => d.name !== VMA_VMSTATE_NAME);
  await makePrivateDir(dir, "target directory");
  for (const c of header.configs) {
    await writeFileExclusive(`${dir}/${c.name}`, c.data, { what: "config" });
  }
  const sockets = await makePrivateTempDir("vmabak-qcow2-");
  const servers: Deno.ChildProcess[] = [];
  try {
    for (const [i, { d, file }] of disks.entries()) {
      const path = `${dir}/${file}`;
      (await createExclusive(path, { what: "disk image" })).close();
      await tool("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        path,
        String(d.size),
      ]);
      const sock = `${sockets}/${i}.sock`;
      servers.push(
        new Deno.Command("qemu-nbd", {
          args: ["-f", "qcow2", "-x", "disk", "-k", sock, "--persistent", path],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
      for (let t = 0; t < 400; t++) {
        if (await Deno.stat(sock).then(() => true, () => false)) break;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const socketOf = new Map(
      disks.map(({ d }, i) => [d.name, `${sockets}/${i}.sock`]),
    );
    await extractToNbd(
      reader,
      (device) => ({
        address: { path: socketOf.get(device)! },
        exportName: "disk",
      }),
      options,
    );
    return {
      files: [
        ...header.configs.map((c) => c.name),
        ...disks.map((x) => x.file),
      ],
      skipped: header.devices.filter((d) => d.name === VMA_VMSTATE_NAME)
        .map((d) => d.name),
    };
  } finally {
    for (const s of servers) {
      try {
        s.kill("SIGTERM");
      } catch { /* gone */ }
      await s.status;
    }
    await Deno.remove(sockets, { recursive: true }).catch(() => {});
  }
}
