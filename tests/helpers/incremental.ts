/**
 * Test-only: writes an incremental archive offline through vmabak's own
 * library (VmaWriter + the incremental record), from raw images and the set
 * of clusters that changed since the base archive.
 */
import { ClusterSet } from "../../lib/chain/cluster_set.ts";
import {
  DESCRIPTION_CONFIG,
  makeIncremental,
  readDescription,
  RUNS_CONFIG_PREFIX,
} from "../../lib/chain/incremental.ts";
import { openArchiveInput } from "../../lib/io/input.ts";
import { openArchiveOutput } from "../../lib/io/output.ts";
import {
  clusterCount,
  VMA_CLUSTER_SIZE,
  VMA_VMSTATE_NAME,
} from "../../lib/vma/format.ts";
import { VmaReader } from "../../lib/vma/reader.ts";
import { VmaWriter } from "../../lib/vma/writer.ts";

export interface IncrementalSpec {
  /** The archive this one continues. */
  base: string;
  /** Raw image per disk name (the base's disk names). */
  images: Record<string, string>;
  /** Changed clusters per disk name. */
  changed: Record<string, number[]>;
  /** Fault knob: clusters recorded in the set but not stored. */
  omit?: Record<string, number[]>;
}

export async function writeIncremental(
  path: string,
  spec: IncrementalSpec,
): Promise<void> {
  const reader = await VmaReader.open(
    await openArchiveInput(spec.base, new ReadableStream()),
  );
  await reader.close();
  const base = reader.header;
  const disks = base.devices.filter((d) => d.name !== VMA_VMSTATE_NAME);
  const sets = new Map<string, ClusterSet>();
  for (const d of disks) {
    const set = new ClusterSet(clusterCount(d.size));
    for (const c of spec.changed[d.name] ?? []) set.add(c);
    sets.set(d.name, set);
  }
  const description = readDescription(base) ?? describeOffline(disks);
  const inc = makeIncremental(base, sets);
  description.incremental = inc.record;
  const output = await openArchiveOutput(path, {
    write: () => Promise.reject(new Error("no stdout")),
  });
  const writer = new VmaWriter(output);
  writer.addConfig(
    DESCRIPTION_CONFIG,
    new TextEncoder().encode(JSON.stringify(description)),
  );
  for (const c of base.configs) {
    if (
      c.name !== DESCRIPTION_CONFIG && !c.name.startsWith(RUNS_CONFIG_PREFIX)
    ) {
      writer.addConfig(c.name, c.data);
    }
  }
  for (const c of inc.configs) writer.addConfig(c.name, c.data);
  const ids = new Map(
    disks.map((d) => [d.name, writer.addDevice(d.name, d.size)]),
  );
  await writer.start();
  const buf = new Uint8Array(VMA_CLUSTER_SIZE);
  for (const d of disks) {
    const file = await Deno.open(spec.images[d.name]!, { read: true });
    try {
      for (const [start, length] of sets.get(d.name)!.runs()) {
        for (let c = start; c < start + length; c++) {
          if (spec.omit?.[d.name]?.includes(c)) continue;
          buf.fill(0);
          await file.seek(c * VMA_CLUSTER_SIZE, Deno.SeekMode.Start);
          let got = 0;
          while (got < buf.length) {
            const n = await file.read(buf.subarray(got));
            if (n === null) break;
            got += n;
          }
          await writer.writeCluster(ids.get(d.name)!, c, buf);
        }
      }
    } finally {
      file.close();
    }
  }
  await writer.finish();
  await output.commit();
}

/** A valid vmabak.json for disks of an archive made by `vmabak create` (no VM behind it). */
function describeOffline(
  disks: { name: string; size: number }[],
): Record<string, unknown> {
  return {
    vmabak: "test",
    qemu: "7.2.0",
    name: null,
    machine: "q35",
    kvm: false,
    memoryBytes: 64 * 1024 * 1024,
    cpus: 1,
    vmstate: false,
    disks: disks.map((d) => ({
      name: d.name,
      node: d.name,
      qdev: "",
      deviceId: "",
      deviceType: "",
      pciAddr: null,
      bootIndex: null,
      format: "raw",
      file: "",
      size: d.size,
    })),
  };
}
