/**
 * A real qemu-ga (Debian's qemu-guest-agent) on a unix socket, for tests:
 * it runs on the build host itself, so its freeze and thaw commands are
 * blocked (`--block-rpcs`): a real freeze here would freeze the host's own
 * file systems. What it reports (guest-info, guest-get-osinfo) is the host's.
 */
import { sleep } from "./sleep.ts";

/** A running qemu-ga: its socket, and how to stop it. */
export interface RealAgent {
  path: string;
  stop(): Promise<void>;
}

/** qemu-ga on a unix socket, unable to freeze or thaw anything (nor to run `blocked`). */
export async function startRealAgent(
  dir: string,
  blocked: string[] = [],
): Promise<RealAgent> {
  const path = `${dir}/qga.sock`;
  const child = new Deno.Command("qemu-ga", {
    args: [
      "-m",
      "unix-listen",
      "-p",
      path,
      "-t",
      dir,
      "-f",
      `${dir}/qga.pid`,
      "--block-rpcs",
      [
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-freeze-list",
        "guest-fsfreeze-thaw",
        ...blocked,
      ].join(","),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 100; i++) {
    if (await Deno.stat(path).then(() => true, () => false)) break;
    await sleep(20);
  }
  return {
    path,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}
