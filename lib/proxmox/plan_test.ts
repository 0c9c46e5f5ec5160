import assert from "node:assert/strict";
import { parsePveConfig } from "./config.ts";
import { ProxmoxConfigError } from "./errors.ts";
import { planVm } from "./plan.ts";
import { proxmoxArgs, proxmoxScript } from "./qemu_args.ts";

const enc = new TextEncoder();

/** The fixture's config (../shared/fixtures/README.md), as Proxmox wrote it. */
export const FIXTURE_CONF = `boot: order=scsi0;net0
cores: 2
cpu: x86-64-v2-AES
memory: 256
meta: creation-qemu=9.0.2,ctime=1764500000
name: fixture-vm
net0: virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1
numa: 0
ostype: l26
scsi0: local-lvm:vm-101-disk-0,iothread=1,size=64M
scsihw: virtio-scsi-single
smbios1: uuid=3f9c1a52-7d1e-4b8e-9a51-0c6f2d4e8b71
sockets: 1
virtio1: local-lvm:vm-101-disk-1,size=16388K
vmgenid: 1d7e0a3c-5b9f-4c2e-8f61-2a4b6c8d0e1f
#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:
#qmdump#map:virtio1:drive-virtio1:local-lvm:raw:
`;

const FIXTURE_DEVICES = [
  { name: "drive-scsi0", size: 67108864 },
  { name: "drive-virtio1", size: 16780800 },
];

function plan(
  text: string,
  devices = FIXTURE_DEVICES,
  configs = ["qemu-server.conf"],
) {
  return planVm(parsePveConfig(enc.encode(text)), { devices, configs });
}

function args(text: string, devices = FIXTURE_DEVICES): string[][] {
  return proxmoxArgs(plan(text, devices), "/r", null);
}

function find(a: string[][], opt: string): string[] {
  return a.filter((g) => g[0] === opt).map((g) => g[1]!);
}

Deno.test("planVm() maps the fixture's config to its QEMU hardware", () => {
  const p = plan(FIXTURE_CONF, FIXTURE_DEVICES, [
    "qemu-server.conf",
    "qemu-server.fw",
  ]);
  assert.equal(p.machine, "pc");
  assert.equal(p.memoryMiB, 256);
  assert.deepEqual([p.sockets, p.cores], [1, 2]);
  assert.equal(p.cpu.model, "qemu64");
  assert.ok(p.cpu.flags.includes("+aes"));
  assert.equal(p.scsihw, "virtio-scsi-single");
  assert.deepEqual(
    p.drives.map((d) => [d.key, d.device, d.bootIndex, d.iothread]),
    [
      ["scsi0", "drive-scsi0", 100, true],
      ["virtio1", "drive-virtio1", null, false],
    ],
  );
  assert.deepEqual(p.nics.map((n) => [n.key, n.device, n.mac, n.bootIndex]), [
    ["net0", "virtio-net-pci", "BC:24:11:2A:3B:4C", 101],
  ]);
  assert.equal(p.uuid, "3f9c1a52-7d1e-4b8e-9a51-0c6f2d4e8b71");
  assert.equal(p.vmgenid, "1d7e0a3c-5b9f-4c2e-8f61-2a4b6c8d0e1f");
  assert.deepEqual(p.unmapped, [
    "net0: bridge=vmbr0 (user-mode network instead)",
    "net0: firewall=1 (user-mode network instead)",
    "meta: creation-qemu=9.0.2,ctime=1764500000",
    "qemu-server.fw: extracted, not applied",
  ]);
});

Deno.test("proxmoxArgs() puts each drive on its bus and controller", () => {
  const a = args(FIXTURE_CONF);
  assert.deepEqual(find(a, "-device"), [
    "vmgenid,guid=1d7e0a3c-5b9f-4c2e-8f61-2a4b6c8d0e1f",
    "virtio-scsi-pci,id=virtioscsi0,iothread=iothread-virtioscsi0",
    "scsi-hd,bus=virtioscsi0.0,channel=0,scsi-id=0,lun=0,drive=drive-scsi0,id=scsi0,bootindex=100",
    "virtio-blk-pci,drive=drive-virtio1,id=virtio1",
    "virtio-net-pci,netdev=net0,id=net0,mac=BC:24:11:2A:3B:4C,bootindex=101",
  ]);
  assert.deepEqual(find(a, "-smp"), ["2,sockets=1,cores=2,threads=1"]);
  assert.deepEqual(find(a, "-m"), ["256M"]);
  assert.deepEqual(find(a, "-smbios"), [
    "type=1,uuid=3f9c1a52-7d1e-4b8e-9a51-0c6f2d4e8b71",
  ]);
  assert.deepEqual(find(a, "-netdev"), ["user,id=net0"]);
  assert.deepEqual(find(a, "-blockdev").slice(0, 2), [
    "driver=file,filename=/r/disk-drive-scsi0.raw,node-name=file-scsi0",
    "driver=raw,file=file-scsi0,node-name=drive-scsi0",
  ]);
});

Deno.test("proxmoxArgs() maps ide (pc and q35), sata, lsi and virtio-scsi-pci, CD-ROMs and legacy boot", () => {
  const conf = (machine: string, scsihw: string) =>
    `machine: ${machine}\nscsihw: ${scsihw}\nboot: cdn\nbootdisk: sata1\n` +
    "ide1: local:vm-1-disk-0\nide2: none,media=cdrom\nsata1: local:vm-1-disk-1,ssd=1\n" +
    "scsi8: local:vm-1-disk-2\nnet0: e1000=52:54:00:12:34:56\nnet1: virtio=52:54:00:12:34:57\n" +
    "#qmdump#map:ide1:drive-ide1::raw:\n#qmdump#map:sata1:drive-sata1::raw:\n#qmdump#map:scsi8:drive-scsi8:::\n";
  const devs = ["drive-ide1", "drive-sata1", "drive-scsi8"].map((name) => ({
    name,
    size: 1 << 20,
  }));
  const pc = find(args(conf("pc-i440fx-7.2", "lsi"), devs), "-device");
  assert.deepEqual(pc, [
    "ide-hd,bus=ide.0,unit=1,drive=drive-ide1,id=ide1",
    "ide-cd,bus=ide.1,unit=0,id=ide2,bootindex=101",
    "ahci,id=ahci0",
    "ide-hd,bus=ahci0.1,rotation_rate=1,drive=drive-sata1,id=sata1,bootindex=100",
    "lsi53c895a,id=scsihw1",
    "scsi-hd,bus=scsihw1.0,scsi-id=1,drive=drive-scsi8,id=scsi8",
    "e1000,netdev=net0,id=net0,mac=52:54:00:12:34:56,bootindex=102",
    "virtio-net-pci,netdev=net1,id=net1,mac=52:54:00:12:34:57,bootindex=103",
  ]);
  const q35 = find(args(conf("q35", "virtio-scsi-pci"), devs), "-device");
  assert.equal(q35[0], "ide-hd,bus=ide.2,unit=0,drive=drive-ide1,id=ide1");
  assert.equal(q35[1], "ide-cd,bus=ide.1,unit=0,id=ide2,bootindex=101");
  assert.equal(q35[4], "virtio-scsi-pci,id=scsihw0");
  assert.equal(
    q35[5],
    "scsi-hd,bus=scsihw0.0,channel=0,scsi-id=0,lun=8,drive=drive-scsi8,id=scsi8",
  );
  assert.deepEqual(find(args(conf("q35", "lsi"), devs), "-machine"), [
    "q35,accel=kvm:tcg",
  ]);
  assert.deepEqual(
    find(args(conf("pc-q35-8.1+pve0", "lsi"), devs), "-machine"),
    ["q35,accel=kvm:tcg"],
  );
});

Deno.test("proxmoxArgs() boots OVMF with the efidisk as VARS, sized to its efitype", () => {
  const conf =
    "bios: ovmf\nmachine: q35\nefidisk0: local-lvm:vm-1-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M\n" +
    "#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:\n";
  const p = plan(conf, [{ name: "drive-efidisk0", size: 4 << 20 }]);
  assert.deepEqual(p.efi, {
    device: "drive-efidisk0",
    varsSize: 540672,
    efitype: "4m",
  });
  assert.deepEqual(p.unmapped, ["efidisk0: pre-enrolled-keys=1"]);
  const a = proxmoxArgs(p, "/r", {
    code: "/fw/CODE_4M.fd",
    vars: "/fw/VARS_4M.fd",
  });
  assert.deepEqual(find(a, "-drive"), [
    "if=pflash,unit=0,format=raw,readonly=on,file=/fw/CODE_4M.fd",
    "if=pflash,unit=1,format=raw,size=540672,file=/r/disk-drive-efidisk0.raw",
  ]);
  const none = proxmoxArgs(plan("bios: ovmf\n", []), "/r", {
    code: "/c",
    vars: "/v",
  });
  assert.deepEqual(
    find(none, "-drive")[1],
    "if=pflash,unit=1,format=raw,snapshot=on,file=/v",
  );
  assert.throws(
    () => plan(conf, [{ name: "drive-efidisk0", size: 131072 }]),
    /smaller than the 4m OVMF variables/,
  );
});

Deno.test("proxmoxArgs() keeps a Windows guest's clock as qemu-server does: local time unless localtime: 0, slewed drift", () => {
  const win = FIXTURE_CONF.replace("ostype: l26", "ostype: win10");
  assert.deepEqual(find(args(win), "-rtc"), ["base=localtime,driftfix=slew"]);
  assert.ok(!plan(win).unmapped.some((u) => u.startsWith("ostype")));
  const utc = win.replace("numa: 0", "numa: 0\nlocaltime: 0");
  assert.deepEqual(find(args(utc), "-rtc"), ["driftfix=slew"]);
  assert.deepEqual(find(args(FIXTURE_CONF), "-rtc"), []);
  const local = FIXTURE_CONF.replace("numa: 0", "numa: 0\nlocaltime: 1");
  assert.deepEqual(find(args(local), "-rtc"), ["base=localtime"]);
  const bogus = FIXTURE_CONF.replace("ostype: l26", "ostype: beos");
  assert.ok(plan(bogus).unmapped.includes("ostype: beos"));
});

Deno.test("planVm() lists keys and options it cannot map, printable", () => {
  const p = plan(
    "args: -device evil,x=1\nhostpci0: 0000:01:00.0\ntpmstate0: local:vm-1-disk-9,version=v2.0\n" +
      "net0: virtio=52:54:00:00:00:01,bridge=vmbr0;touch /tmp/x,tag=5\nscsi0: local:vm-1-disk-0,aio=io_uring\n" +
      "cpu: custom-foo\nname: not_a_dns_name\ndescrip: caf\u00e9\ncipassword: $5$secret\n#qmdump#map:scsi0:drive-scsi0:::\n[snap1]\nmemory: 8\n",
    [{ name: "drive-scsi0", size: 1 << 20 }, { name: "extra", size: 512 }],
  );
  assert.deepEqual(p.unmapped, [
    "cpu: custom-foo (kvm64 instead)",
    "name: not a DNS name",
    "scsi0: aio=io_uring",
    "extra: no map line: extracted, not attached",
    "net0: bridge=vmbr0;touch /tmp/x (user-mode network instead)",
    "net0: tag=5 (user-mode network instead)",
    "args: -device evil,x=1",
    "hostpci0: 0000:01:00.0",
    "tpmstate0: local:vm-1-disk-9,version=v2.0",
    "descrip: caf\u00e9",
    "cipassword: cloud-init secret, not shown",
    "[snap1]: section ignored",
  ]);
  const a = proxmoxArgs(p, "/r", null).flat().join(" ");
  assert.doesNotMatch(a, /evil|touch|0000:01|not_a_dns/);
});

Deno.test("parsePveConfig() and planVm() refuse malformed or hostile values with one line", () => {
  const cases: [string | Uint8Array, RegExp][] = [
    ["memory: 256\r\n", /line 1 holds a control character/],
    [new Uint8Array([0x6d, 0x3a, 0x20, 0xff, 0x0a]), /not UTF-8/],
    [
      "memory: 256\nmemory: 512\n",
      /key memory appears twice \(lines 1 and 2\)/,
    ],
    ["memory 256\n", /line 1 is not "key: value"/],
    ["memory: 256;reboot\n", /memory \(line 1\) must be an integer/],
    [
      "net0: virtio=52:54:00:00:00:01;x\n",
      /net0 \(line 1\) has an invalid or multicast MAC/,
    ],
    ["net0: virtio=01:54:00:00:00:01\n", /invalid or multicast MAC/],
    ["net0: bridge=vmbr0\n", /names no NIC model/],
    ["scsi0: x,media=floppy\n", /media other than disk or cdrom/],
    ["scsi0: x,iothread=1,iothread=0\n", /repeated option name/],
    [
      "scsi0: x\n#qmdump#map:scsi0:drive-nope:::\n",
      /map line names a device the archive does not contain/,
    ],
    ["smbios1: uuid=1;reboot\n", /invalid uuid/],
    ["cpu: host,flags=+aes;x y\n", /invalid CPU flag/],
    ["boot: order=scsi0;$(reboot)\n", /invalid boot device/],
    ["machine: pc,accel=kvm\n", /^(?!)/], // accepted: listed, never passed on
    ["machine: virt\n", /ARM machine/],
    ["bios: uefi\n", /must be seabios or ovmf/],
  ];
  for (const [text, re] of cases) {
    const bytes = typeof text === "string" ? enc.encode(text) : text;
    const run = () =>
      planVm(parsePveConfig(bytes), {
        devices: [{ name: "drive-scsi0", size: 1 << 20 }],
        configs: [],
      });
    if (re.source === "^(?!)") {
      const p = run();
      assert.equal(p.unmapped[0], "machine: accel=kvm");
      continue;
    }
    assert.throws(run, (e: unknown) => {
      assert.ok(e instanceof ProxmoxConfigError, String(e));
      assert.match(e.message, re);
      assert.match(e.message, /^Cannot /);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
  }
});

Deno.test("proxmoxArgs() doubles commas in device names and paths: no option can be added", () => {
  const conf = "scsi0: x\n#qmdump#map:scsi0:drive,file.locking=off:::\n";
  const p = plan(conf, [{ name: "drive,file.locking=off", size: 1 << 20 }]);
  const a = proxmoxArgs(p, "/a,b", null);
  assert.deepEqual(
    find(a, "-blockdev")[0],
    "driver=file,filename=/a,,b/disk-drive,,file.locking=off.raw,node-name=file-scsi0",
  );
  assert.deepEqual(find(a, "-qmp"), ["unix:/a,,b/qmp.sock,server=on,wait=off"]);
  assert.throws(
    () => proxmoxArgs(plan("memory: 64\n"), "/a\nb", null),
    /control character/,
  );
});

Deno.test("proxmoxScript() quotes every word: sh hands QEMU exactly the planned arguments", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vmabak-px-'$(x) " });
  try {
    await Deno.mkdir(`${dir}/bin`);
    // A stand-in for QEMU that writes its arguments, one per line.
    await Deno.writeTextFile(
      `${dir}/bin/qemu-system-x86_64`,
      '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n',
      { mode: 0o755 },
    );
    const p = plan(
      FIXTURE_CONF.replace("meta:", "tags: a;b $(touch pwned) `id`\nmeta:"),
    );
    const script = proxmoxScript(p, dir, null);
    assert.match(script, /^# {3}tags: a;b \$\(touch pwned\) `id`$/m);
    await Deno.writeTextFile(`${dir}/resume.sh`, script);
    const out = await new Deno.Command("sh", {
      args: [`${dir}/resume.sh`, "-S"],
      env: { PATH: `${dir}/bin:/usr/bin:/bin` },
      cwd: dir,
      stdout: "piped",
    }).output();
    assert.ok(out.success);
    const got = new TextDecoder().decode(out.stdout).split("\n").slice(0, -1);
    assert.deepEqual(got, [...proxmoxArgs(p, dir, null).flat(), "-S"]);
    await assert.rejects(Deno.stat(`${dir}/pwned`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
