/** A small tmpfs for tests of a directory that fills up (mounting needs root). */
import { run } from "./run.ts";

/** Whether this process may mount a tmpfs. */
export const CAN_MOUNT = Deno.uid() === 0;

export interface Tmpfs {
  path: string;
  /** Unmounts it (lazily when still busy). */
  unmount(): Promise<void>;
}

/** Makes `path` and mounts a tmpfs of `size` (mount's syntax: "3M", "400k") on it. */
export async function mountTmpfs(path: string, size: string): Promise<Tmpfs> {
  await Deno.mkdir(path);
  const m = await run("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${size}`,
    "tmpfs",
    path,
  ]);
  if (m.code !== 0) throw new Error(`mount tmpfs on ${path}: ${m.stderr}`);
  return {
    path,
    async unmount() {
      if ((await run("umount", [path])).code !== 0) {
        await run("umount", ["-l", path]);
      }
    },
  };
}
