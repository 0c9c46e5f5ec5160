/** Real NBD servers for tests: qemu-nbd and nbdkit on a unix socket in a private directory. */
import { makePrivateTempDir } from "../../lib/io/safe_file.ts";

export interface RunningNbdServer {
  /** The unix socket. */
  path: string;
  /** `nbd+unix:///NAME?socket=PATH` */
  uri: string;
  exportName: string;
  /** The server's process id. */
  pid: number;
  /** Ends the server (SIGTERM, or the signal given) and removes its directory. */
  stop(signal?: Deno.Signal): Promise<void>;
}

async function spawnServer(
  cmd: string,
  args: (sock: string) => string[],
  exportName: string,
): Promise<RunningNbdServer> {
  const dir = await makePrivateTempDir("vmabak-nbdpeer-");
  const path = `${dir}/nbd.sock`;
  const child = new Deno.Command(cmd, {
    args: args(path),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch { /* gone */ }
    await child.status;
    await child.stderr.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  for (let i = 0; i < 200; i++) {
    try {
      await Deno.stat(path);
      return {
        path,
        uri: `nbd+unix:///${exportName}?socket=${path}`,
        exportName,
        pid: child.pid,
        stop,
      };
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  await stop();
  throw new Error(`${cmd} did not create its socket`);
}

/** `qemu-nbd` serving an image to any number of clients in turn, `shared` (default 8) at once. */
export function startQemuNbd(
  image: string,
  options: {
    format: "raw" | "qcow2";
    exportName?: string;
    readOnly?: boolean;
    shared?: number;
  },
): Promise<RunningNbdServer> {
  const name = options.exportName ?? "disk";
  return spawnServer("qemu-nbd", (sock) => [
    "--persistent",
    `--shared=${options.shared ?? 8}`,
    "-f",
    options.format,
    "-x",
    name,
    "-k",
    sock,
    ...(options.readOnly ? ["--read-only"] : []),
    image,
  ], name);
}

/** `nbdkit [--filter=F]... PLUGIN ARGS...` in the foreground. */
export function startNbdkit(
  plugin: string[],
  options: { filters?: string[]; exportName?: string } = {},
): Promise<RunningNbdServer> {
  const name = options.exportName ?? "";
  return spawnServer("nbdkit", (sock) => [
    "-f",
    "-U",
    sock,
    ...(options.filters ?? []).map((f) => `--filter=${f}`),
    ...plugin,
  ], name);
}
