/** Starts a restored VM's resume.sh and connects to its QMP socket, for tests. */
import { QmpClient } from "../../lib/qmp/client.ts";

export interface RestoredVm {
  qmp: QmpClient;
  stop(): Promise<void>;
}

export async function startRestored(
  dir: string,
  extraArgs: string[] = [],
): Promise<RestoredVm> {
  const qemu = new Deno.Command("sh", {
    args: [`${dir}/resume.sh`, ...extraArgs],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let qmp: QmpClient | undefined;
  for (let i = 0; i < 200 && qmp === undefined; i++) {
    qmp = await QmpClient.connect(`${dir}/qmp.sock`).catch(() => undefined);
    if (qmp === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    await qmp?.close().catch(() => {});
    try {
      qemu.kill("SIGKILL");
    } catch { /* gone */ }
    const out = await qemu.output();
    return out;
  };
  if (qmp === undefined) {
    const out = await stop();
    throw new Error(
      `resume.sh did not open its QMP socket: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return { qmp, stop: async () => void await stop() };
}
