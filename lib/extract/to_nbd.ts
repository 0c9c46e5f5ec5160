/**
 * `extract --to URI`: every disk of an archive written into NBD exports
 * (qemu-nbd on a qcow2 or an LVM volume, nbdkit, ...), stored blocks as
 * writes, zero clusters and zero blocks as WRITE_ZEROES, flushed at the end.
 */
import { NbdClient } from "../nbd/client.ts";
import { VmaError } from "../vma/errors.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "../vma/format.ts";
import type { VmaReader } from "../vma/reader.ts";
import { printable } from "../text/escape.ts";
import { exportFor, type NbdTarget } from "./nbd_uri.ts";

/** Where one disk goes. */
export type DiskTarget = (device: string) => NbdTarget;

export interface ExtractToNbdResult {
  /** Device name → export name. */
  exports: Map<string, string>;
  dataBytes: number;
  zeroBytes: number;
  /** Devices not written (vmstate). */
  skipped: string[];
}

/** A run of zeros waiting to be sent, joined with the ones that follow it. */
class ZeroRuns {
  #client: NbdClient | undefined;
  #at = 0;
  #length = 0;
  bytes = 0;

  add(client: NbdClient, at: number, length: number): Promise<void> | null {
    if (client === this.#client && at === this.#at + this.#length) {
      this.#length += length;
      return null;
    }
    const sent = this.flush();
    this.#client = client;
    this.#at = at;
    this.#length = length;
    return sent;
  }

  flush(): Promise<void> | null {
    const client = this.#client;
    if (client === undefined || this.#length === 0) return null;
    this.#client = undefined;
    this.bytes += this.#length;
    return client.writeZeroes(this.#at, this.#length);
  }
}

/**
 * Writes every disk of `reader`'s archive into its export (one connection
 * per disk, requests in flight). The exports must be writable and at least
 * as large as the disks; this is checked before any byte is written.
 */
export async function extractToNbd(
  reader: VmaReader,
  target: NbdTarget | DiskTarget,
  options: { signal?: AbortSignal } = {},
): Promise<ExtractToNbdResult> {
  const disks = reader.header.devices.filter((d) =>
    d.name !== VMA_VMSTATE_NAME
  );
  const resolve: DiskTarget = typeof target === "function"
    ? target
    : () => target;
  const names = disks.map((d) => exportFor(resolve(d.name), d.name));
  const addresses = disks.map((d) => JSON.stringify(resolve(d.name).address));
  if (
    new Set(names.map((n, i) => `${addresses[i]} ${n}`)).size !== names.length
  ) {
    throw new VmaError(
      `Cannot extract to NBD: ${disks.length} disks would go to one export "${
        printable(names[0]!, 80)
      }"; leave the export name empty (each disk to the export named as it) or put {} in it`,
    );
  }
  const clients = new Map<number, NbdClient>();
  try {
    for (const [i, d] of disks.entries()) {
      const name = names[i]!;
      const client = await NbdClient.connect({
        address: resolve(d.name).address,
        exportName: name,
        metaContexts: [],
      });
      clients.set(d.id, client);
      const where = `Cannot extract ${printable(d.name, 80)} to NBD export "${
        printable(name, 80)
      }"`;
      if (client.readOnly) throw new VmaError(`${where}: it is read-only`);
      if (client.size < d.size) {
        throw new VmaError(
          `${where}: it has ${client.size} bytes, the disk ${d.size}`,
        );
      }
    }
    const zeros = new ZeroRuns();
    let dataBytes = 0;
    for await (const { slots, data } of reader.extents()) {
      options.signal?.throwIfAborted();
      const sends: Promise<void>[] = [];
      const send = (p: Promise<void> | null) => {
        if (p !== null) sends.push(p);
      };
      let block = 0;
      for (const slot of slots) {
        const client = clients.get(slot.device.id);
        if (client === undefined) { // vmstate: not a disk
          for (let m = slot.mask; m !== 0; m &= m - 1) block++;
          continue;
        }
        const base = slot.cluster * VMA_CLUSTER_SIZE;
        const valid = Math.min(VMA_CLUSTER_SIZE, slot.device.size - base);
        for (let j = 0; j < 16 && j * VMA_BLOCK_SIZE < valid;) {
          const stored = ((slot.mask >>> j) & 1) === 1;
          let k = j;
          while (k < 16 && (((slot.mask >>> k) & 1) === 1) === stored) k++;
          const at = base + j * VMA_BLOCK_SIZE;
          const length = Math.min(k * VMA_BLOCK_SIZE, valid) -
            j * VMA_BLOCK_SIZE;
          if (stored) {
            // `data` is reused after this extent: the writes finish first.
            const from = block * VMA_BLOCK_SIZE;
            send(client.write(at, data.subarray(from, from + length)));
            dataBytes += length;
            block += k - j;
          } else send(zeros.add(client, at, length));
          j = k;
        }
      }
      await Promise.all(sends);
    }
    await zeros.flush();
    reader.checkComplete();
    for (const client of clients.values()) await client.flush();
    return {
      exports: new Map(disks.map((d, i) => [d.name, names[i]!])),
      dataBytes,
      zeroBytes: zeros.bytes,
      skipped: reader.header.devices.filter((d) => d.name === VMA_VMSTATE_NAME)
        .map((d) => d.name),
    };
  } finally {
    for (const client of clients.values()) await client.close().catch(() => {});
  }
}
