/** `vmabak serve` run as a child process for tests, and a disk image with every kind of cluster. */
import { MAIN } from "./run.ts";

/** A running `vmabak serve`; its stderr lines so far. */
export interface Served {
  child: Deno.ChildProcess;
  lines: string[];
  uri(name: string): string;
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

export async function serve(
  archive: string,
  listen: string[],
): Promise<Served> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve", archive, ...listen],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let base = "";
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += value;
      const parts = text.split("\n");
      text = parts.pop()!;
      lines.push(...parts);
    }
  })();
  for (let i = 0; i < 600 && !lines.some((l) => l.startsWith("serving"));) {
    const status = await Promise.race([
      child.status,
      new Promise((r) => setTimeout(r, 50, null)),
    ]);
    if (status !== null) {
      await pump;
      throw new Error(`serve exited: ${lines.join("\n")}`);
    }
    i++;
  }
  const listening = lines.find((l) => l.startsWith("listening on"))!;
  const unix = /unix socket (\S+)/.exec(listening);
  const tcp = /tcp (\S+):(\d+)/.exec(listening);
  base = unix ? `?socket=${unix[1]}` : `${tcp![1]}:${tcp![2]}`;
  return {
    child,
    lines,
    uri: (name) =>
      unix ? `nbd+unix:///${name}${base}` : `nbd://${base}/${name}`,
    async stop(signal: Deno.Signal = "SIGINT") {
      try {
        child.kill(signal);
      } catch { /* gone */ }
      const status = await child.status;
      await pump;
      return status;
    },
  };
}

/** 5 MiB + 3 sectors: data, zero clusters, partial clusters, a short last cluster. */
export function testImage(): Uint8Array {
  const img = new Uint8Array(5 * 1024 * 1024 + 1536);
  let s = 7;
  for (let b = 0; b * 4096 < img.length; b++) {
    const cluster = Math.floor(b / 16);
    // Clusters 3..10 and every 7th are zero; in cluster 12 every other block.
    if ((cluster >= 3 && cluster <= 10) || cluster % 7 === 0) continue;
    if (cluster === 12 && b % 2 === 0) continue;
    for (let i = b * 4096; i < Math.min(img.length, (b + 1) * 4096); i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      img[i] = s >>> 24;
    }
  }
  return img;
}
