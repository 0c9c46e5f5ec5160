import assert from "node:assert/strict";
import { checkPveArchive } from "./check.ts";
import { parsePveConfig } from "./config.ts";
import type { BlockFact, VmFacts } from "./facts.ts";
import { PVE_LINE_RE, PVE_MACHINE_RE, PVE_MAP_RE } from "./format.ts";
import { type ArchivedDisk, generatePveConfig, pveSize } from "./generate.ts";
import { planVm } from "./plan.ts";

const MiB = 1024 * 1024;

function vm(over: Partial<VmFacts>): VmFacts {
  return {
    name: "web-1",
    uuid: "3f9c1a52-7d1e-4b8e-9a51-0c6f2d4e8b71",
    vmgenid: null,
    machine: "pc-i440fx-7.2",
    memoryMiB: 256,
    sockets: 1,
    cores: 2,
    threads: 1,
    cpuModel: "qemu64",
    blocks: [],
    nics: [],
    ...over,
  };
}

function disk(
  node: string,
  deviceType: string,
  bus: BlockFact["bus"],
  over: Partial<BlockFact> = {},
): BlockFact {
  return {
    node,
    device: "",
    deviceType,
    bootIndex: null,
    bus,
    unit: 0,
    readOnly: false,
    size: 8 * MiB,
    pflash: null,
    ...over,
  };
}

const archived = (...nodes: string[]): ArchivedDisk[] =>
  nodes.map((node) => ({ name: `n-${node}`, node, size: 8 * MiB }));
const pci = { name: "pci.0", controllerType: "i440FX-pcihost", builtIn: true };
const opts = { storage: null, vmid: 120 };

/** Every line obeys Proxmox's line patterns; the archive passes every restore rule. */
function assertRestorable(text: string, disks: ArchivedDisk[]): void {
  for (const line of text.trimEnd().split("\n")) {
    assert.ok(
      line.startsWith("#") ? PVE_MAP_RE.test(line) : PVE_LINE_RE.test(line),
      line,
    );
  }
  checkPveArchive(
    new TextEncoder().encode(text),
    disks.map((d, i) => ({ id: i + 1, name: d.name, size: d.size })),
  );
  // And vmabak's own restore reads it back into a plan.
  planVm(parsePveConfig(new TextEncoder().encode(text)), {
    devices: disks,
    configs: ["qemu-server.conf"],
  });
}

Deno.test("pveSize() writes sizes as Proxmox does", () => {
  assert.equal(pveSize(10 * 2 ** 30), "10G");
  assert.equal(pveSize(4 * MiB), "4M");
  assert.equal(pveSize(540672), "528K");
  assert.equal(pveSize(16780800), "16388K");
  assert.equal(pveSize(1000), "1K");
});

Deno.test("generatePveConfig(): SeaBIOS, virtio-blk, one NIC, boot order from bootindex", () => {
  const disks = archived("d0", "d1");
  const g = generatePveConfig(
    vm({
      blocks: [
        disk("d0", "virtio-blk-pci", pci, { bootIndex: 1 }),
        disk("d1", "virtio-blk-pci", pci),
      ],
      nics: [{
        id: "nic0",
        type: "virtio-net-pci",
        mac: "52:54:00:12:34:56",
        bootIndex: 2,
      }],
    }),
    disks,
    opts,
  );
  assert.equal(
    g.text,
    [
      "boot: order=virtio0;net0",
      "cores: 2",
      "cpu: qemu64",
      "machine: pc-i440fx-7.2",
      "memory: 256",
      "name: web-1",
      "net0: virtio=52:54:00:12:34:56,bridge=vmbr0",
      "smbios1: uuid=3f9c1a52-7d1e-4b8e-9a51-0c6f2d4e8b71",
      "sockets: 1",
      "virtio0: local:vm-120-disk-0,size=8M",
      "virtio1: local:vm-120-disk-1,size=8M",
      "#qmdump#map:virtio0:n-d0::raw:",
      "#qmdump#map:virtio1:n-d1::raw:",
      "",
    ].join("\n"),
  );
  assert.deepEqual(g.notes, []);
  assertRestorable(g.text, disks);
});

Deno.test("generatePveConfig(): an ostype from the guest agent is one sorted line; none without it", () => {
  const disks = archived("d0");
  const facts = vm({ blocks: [disk("d0", "virtio-blk-pci", pci)] });
  for (const ostype of ["l26", "win11"] as const) {
    const g = generatePveConfig(facts, disks, { ...opts, ostype });
    const lines = g.text.split("\n");
    assert.deepEqual(lines.slice(5, 8), [
      "name: web-1",
      `ostype: ${ostype}`,
      "smbios1: uuid=3f9c1a52-7d1e-4b8e-9a51-0c6f2d4e8b71",
    ]);
    assertRestorable(g.text, disks);
  }
  for (const none of [opts, { ...opts, ostype: null }]) {
    assert.doesNotMatch(generatePveConfig(facts, disks, none).text, /ostype/);
  }
});

Deno.test("generatePveConfig(): virtio-scsi, one controller per disk or one for all, with --storage", () => {
  const disks = archived("a", "b");
  const bus = (n: string) => ({
    name: `${n}.0`,
    controllerType: "virtio-scsi-pci",
    builtIn: false,
  });
  const single = generatePveConfig(
    vm({
      blocks: [
        disk("a", "scsi-hd", bus("vs0")),
        disk("b", "scsi-hd", bus("vs1")),
      ],
    }),
    disks,
    { storage: "local-lvm", vmid: 120 },
  );
  const lines = single.text.split("\n");
  assert.ok(lines.includes("scsihw: virtio-scsi-single"));
  assert.ok(lines.includes("scsi0: local-lvm:vm-120-disk-0,size=8M"));
  assert.ok(lines.includes("scsi1: local-lvm:vm-120-disk-1,size=8M"));
  assert.ok(lines.includes("#qmdump#map:scsi1:n-b:local-lvm:raw:"));
  assert.ok(
    lines.includes("boot: order=scsi0"),
    "no bootindex: the first disk",
  );
  assertRestorable(single.text, disks);
  const shared = generatePveConfig(
    vm({
      blocks: [
        disk("a", "scsi-hd", bus("vs0")),
        disk("b", "scsi-hd", bus("vs0")),
      ],
    }),
    disks,
    opts,
  );
  assert.ok(shared.text.split("\n").includes("scsihw: virtio-scsi-pci"));
  const lsi = generatePveConfig(
    vm({
      blocks: [
        disk("a", "scsi-hd", {
          name: "lsi0.0",
          controllerType: "lsi53c895a",
          builtIn: false,
        }),
      ],
    }),
    archived("a"),
    opts,
  );
  assert.ok(lsi.text.split("\n").includes("scsihw: lsi"));
});

Deno.test("generatePveConfig(): IDE on i440fx (bus*2+unit) and q35 (port order), AHCI as sata, CD-ROM", () => {
  const piix = (n: number) => ({
    name: `ide.${n}`,
    controllerType: "piix3-ide",
    builtIn: true,
  });
  const pc = generatePveConfig(
    vm({
      blocks: [
        disk("a", "ide-hd", piix(0), { unit: 1, bootIndex: 0 }),
        disk(null as unknown as string, "ide-cd", piix(1), {
          node: null,
          readOnly: true,
          bootIndex: 1,
        }),
      ],
    }),
    archived("a"),
    opts,
  );
  const pl = pc.text.split("\n");
  assert.ok(pl.includes("ide1: local:vm-120-disk-0,size=8M"), pc.text);
  assert.ok(pl.includes("ide2: none,media=cdrom"));
  assert.ok(pl.includes("boot: order=ide1;ide2"));
  assertRestorable(pc.text, archived("a"));
  const ich9 = (n: number) => ({
    name: `ide.${n}`,
    controllerType: "ich9-ahci",
    builtIn: true,
  });
  const q35 = generatePveConfig(
    vm({
      machine: "pc-q35-7.2",
      blocks: [
        disk("a", "ide-hd", ich9(2)),
        disk("b", "ide-hd", ich9(5)),
        disk("c", "ide-hd", {
          name: "ahci0.3",
          controllerType: "ich9-ahci",
          builtIn: false,
        }),
        disk(null as unknown as string, "ide-cd", ich9(1), {
          node: null,
          readOnly: true,
        }),
      ],
    }),
    archived("a", "b", "c"),
    opts,
  );
  const ql = q35.text.split("\n");
  assert.ok(ql.includes("machine: pc-q35-7.2"));
  assert.ok(ql.includes("ide1: local:vm-120-disk-0,size=8M"), q35.text);
  assert.ok(ql.includes("sata0: local:vm-120-disk-1,size=8M"));
  assert.ok(ql.includes("sata1: local:vm-120-disk-2,size=8M"));
  assert.ok(ql.includes("ide2: none,media=cdrom"));
  assertRestorable(q35.text, archived("a", "b", "c"));
});

Deno.test("generatePveConfig(): OVMF from pflash, the VARS as efidisk0; two NICs; threads folded into cores", () => {
  const disks: ArchivedDisk[] = [
    { name: "pflash1", node: "vars", size: 540672 },
    ...archived("a"),
  ];
  const g = generatePveConfig(
    vm({
      machine: "pc-q35-7.2",
      sockets: 2,
      cores: 1,
      threads: 2,
      cpuModel: "Haswell-noTSX",
      vmgenid: "1d7e0a3c-5b9f-4c2e-8f61-2a4b6c8d0e1f",
      blocks: [
        disk("code", "cfi.pflash01", null, { pflash: 0, readOnly: true }),
        disk("vars", "cfi.pflash01", null, { pflash: 1, size: 540672 }),
        disk("a", "virtio-blk-pci", pci, { bootIndex: 0 }),
      ],
      nics: [
        {
          id: "n0",
          type: "virtio-net-pci",
          mac: "52:54:00:12:34:56",
          bootIndex: null,
        },
        {
          id: "device[2]",
          type: "e1000",
          mac: "52:54:00:12:34:57",
          bootIndex: 1,
        },
      ],
    }),
    disks,
    opts,
  );
  const l = g.text.split("\n");
  for (
    const want of [
      "bios: ovmf",
      "efidisk0: local:vm-120-disk-0,efitype=4m,size=528K",
      "#qmdump#map:efidisk0:pflash1::raw:",
      "virtio0: local:vm-120-disk-1,size=8M",
      "net0: virtio=52:54:00:12:34:56,bridge=vmbr0",
      "net1: e1000=52:54:00:12:34:57,bridge=vmbr0",
      "boot: order=virtio0;net1",
      "sockets: 2",
      "cores: 2",
      "cpu: Haswell-noTSX",
      "vmgenid: 1d7e0a3c-5b9f-4c2e-8f61-2a4b6c8d0e1f",
    ]
  ) assert.ok(l.includes(want), `${want}\n${g.text}`);
  assert.ok(PVE_MACHINE_RE.test("pc-q35-7.2"));
  assertRestorable(g.text, disks);
});

Deno.test("generatePveConfig(): what Proxmox cannot hold is left out with a note", () => {
  const g = generatePveConfig(
    vm({
      name: "not_dns",
      machine: "microvm",
      cpuModel: "my-cpu",
      blocks: [
        disk("a", "nvme", {
          name: "nvme-bus.0",
          controllerType: "nvme",
          builtIn: false,
        }),
      ],
      nics: [{
        id: "x",
        type: "virtio-net-pci",
        mac: "01:00:5e:00:00:01",
        bootIndex: null,
      }],
    }),
    archived("a"),
    opts,
  );
  assert.ok(!/^(name|machine|cpu|net0):/m.test(g.text), g.text);
  assert.ok(g.text.includes("sata0: local:vm-120-disk-0,size=8M"));
  assert.equal(g.notes.length, 5, g.notes.join("\n"));
  assertRestorable(g.text, archived("a"));
});

Deno.test("generatePveConfig(): more disks than Proxmox has slots for is an error (the backup then stores no config)", () => {
  const nodes = Array.from({ length: 17 }, (_, i) => `d${i}`);
  assert.throws(
    () =>
      generatePveConfig(
        vm({ blocks: nodes.map((n) => disk(n, "virtio-blk-pci", pci)) }),
        archived(...nodes),
        opts,
      ),
    /no free Proxmox drive slot/,
  );
});
