import type { VmDisk } from "./inventory.ts";

/** A description as `vmabak backup` writes it. */
export function goodDescription(): Record<string, unknown> {
  return {
    vmabak: "0.1.0",
    qemu: "7.2.0",
    name: "web-1",
    machine: "pc-q35-7.2",
    kvm: false,
    memoryBytes: 64 * 1024 * 1024,
    cpus: 1,
    disks: [{
      name: "drive0",
      node: "drive0",
      qdev: "/machine/peripheral/vd0/virtio-backend",
      deviceId: "vd0",
      deviceType: "virtio-blk-pci",
      pciAddr: "0x2.0x0",
      bootIndex: null,
      format: "raw",
      file: "/tmp/disk0.raw",
      size: 4194304,
    }],
    vmstate: false,
  };
}

/** A disk as `listDisks` reports it: a 64 KiB raw virtio-blk disk, `over` applied. */
export function testDisk(over: Partial<VmDisk>): VmDisk {
  return {
    name: "drive0",
    node: "drive0",
    qdev: "",
    deviceId: "",
    deviceType: "virtio-blk-pci",
    pciAddr: null,
    bootIndex: null,
    format: "raw",
    file: "/x",
    size: 65536,
    ...over,
  };
}
