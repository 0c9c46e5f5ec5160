/** The VM's RAM and device state: a background snapshot migration into the archive. */
import type { QmpClient } from "../qmp/client.ts";
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";

interface Capability {
  capability: string;
  state: boolean;
}

/**
 * Turns on the `background-snapshot` migration capability (the RAM of the
 * instant `migrate` starts, saved while the guest runs on) and raises
 * `max-bandwidth` (QEMU's 128 MiB/s default makes saving slow). Returns the
 * function that puts back every capability and parameter it changed. Fails,
 * before anything else touches the VM, when the host cannot do it.
 */
export async function enableBackgroundSnapshot(
  qmp: QmpClient,
): Promise<() => Promise<void>> {
  const status = await qmp.execute<{ status?: string }>("query-migrate");
  if (
    status.status !== undefined &&
    ["active", "setup", "pre-switchover", "device"].includes(status.status)
  ) {
    throw new Error(
      `Cannot save the VM state: a migration is already ${status.status}`,
    );
  }
  const caps = await qmp.execute<Capability[]>("query-migrate-capabilities");
  const params = await qmp.execute<Record<string, unknown>>(
    "query-migrate-parameters",
  );
  const had = (name: string) =>
    caps.find((c) => c.capability === name)?.state ?? false;
  if (!caps.some((c) => c.capability === "background-snapshot")) {
    throw new Error(
      "Cannot save the VM state: this QEMU has no background-snapshot migration (QEMU 6.0 or newer needed); back up without --vmstate",
    );
  }
  try {
    await qmp.execute("migrate-set-capabilities", {
      capabilities: [{ capability: "background-snapshot", state: true }, {
        capability: "events",
        state: true,
      }],
    });
  } catch (error) {
    throw new Error(
      `Cannot save the VM state: QEMU refused a background snapshot (${
        (error as Error).message.replace(/^Cannot run QMP command [^:]+: /, "")
      }); ` +
        "it needs userfaultfd write-protection from the host kernel and no incompatible migration capability; back up without --vmstate",
      { cause: error },
    );
  }
  await qmp.execute("migrate-set-parameters", {
    "max-bandwidth": 100 * 1024 ** 3,
  });
  return async () => {
    await qmp.execute("migrate-set-parameters", {
      "max-bandwidth": params["max-bandwidth"],
    }).catch(() => {});
    await qmp.execute("migrate-set-capabilities", {
      capabilities: [
        {
          capability: "background-snapshot",
          state: had("background-snapshot"),
        },
        { capability: "events", state: had("events") },
      ],
    }).catch(() => {});
  };
}

/**
 * An upper bound for the state stream of a VM with `memoryBytes` of RAM,
 * recorded as the `vmstate` device's size (a hint: the stream delimits
 * itself). Every 4 KiB page costs at most 8 bytes of header on top; video
 * RAM, ROMs and device state are covered by 256 MiB.
 */
export function vmstateSizeHint(memoryBytes: number): number {
  const bound = memoryBytes + Math.ceil(memoryBytes / 4096) * 8 +
    256 * 1024 * 1024;
  return Math.ceil(bound / VMA_CLUSTER_SIZE) * VMA_CLUSTER_SIZE;
}

/**
 * Receives QEMU's migration stream on a unix socket and hands it on as
 * consecutive 64 KiB clusters, in order; the last one is padded with zeros.
 */
export class VmstateReceiver {
  readonly path: string;
  readonly done: Promise<{ bytes: number; clusters: number }>;
  #listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  #conn: Deno.UnixConn | undefined;

  constructor(
    path: string,
    store: (cluster: number, data: Uint8Array) => Promise<void>,
  ) {
    this.path = path;
    this.#listener = Deno.listen({ transport: "unix", path });
    this.done = this.#receive(store);
    this.done.catch(() => {});
  }

  async #receive(store: (cluster: number, data: Uint8Array) => Promise<void>) {
    const conn = await this.#listener.accept();
    this.#conn = conn;
    this.#listener.close();
    const buf = new Uint8Array(VMA_CLUSTER_SIZE);
    let fill = 0;
    let cluster = 0;
    let bytes = 0;
    try {
      for (;;) {
        const n = await conn.read(buf.subarray(fill));
        if (n === null) break;
        fill += n;
        bytes += n;
        if (fill === buf.length) {
          await store(cluster++, buf);
          fill = 0;
        }
      }
      if (fill > 0) await store(cluster++, buf.subarray(0, fill));
      if (bytes === 0) {
        throw new Error(
          "Cannot save the VM state: QEMU sent no migration data",
        );
      }
      return { bytes, clusters: cluster };
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  close(): void {
    for (const c of [this.#listener, this.#conn]) {
      try {
        c?.close();
      } catch { /* closed */ }
    }
  }
}
