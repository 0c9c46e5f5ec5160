/**
 * `vmabak restore --live` against real QEMU, qemu-img and the Proxmox
 * fixture: the VM runs from qcow2 overlays backed by the served archive,
 * QEMU streams the rest, vmabak exits and the VM runs on from local files.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { QmpClient } from "../lib/qmp/client.ts";
import { goodDescription } from "../lib/backup/_test_description.ts";
import { COUNTER_DISK_OFFSET, diskCounter } from "./helpers/boot_sector.ts";
import { haveQemu } from "./helpers/qemu_vm.ts";
import { assertCounterAdvances } from "./helpers/counter_vm.ts";
import { sleep } from "./helpers/sleep.ts";
import { assertImage, buildChain } from "./helpers/chain_fixture.ts";
import { startRestored } from "./helpers/restored_vm.ts";
import {
  haveTool,
  oneLine,
  run,
  spawnVmabak,
  vmabak,
  VZDUMP_FIXTURE,
  withTempDir,
} from "./helpers/run.ts";

const ready = await haveQemu() && await haveTool("zstd");

function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

/** Waits up to `ms` for `pid` to end. */
async function gone(pid: number, ms: number): Promise<boolean> {
  for (let t = 0; t < ms && alive(pid); t += 50) {
    await sleep(50);
  }
  return !alive(pid);
}

/** Kills a QEMU the test started (through vmabak), bounded. */
async function killQemu(pid: number | undefined): Promise<void> {
  if (pid === undefined || !alive(pid)) return;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
  await gone(pid, 5000);
}

/** The QEMU pid `restore --live` printed on stdout ("pid N"), if any. */
function qemuPid(stdout: string): number | undefined {
  return Number(/^pid (\d+)$/m.exec(stdout)?.[1]) || undefined;
}

/** The Proxmox fixture, decompressed to `tmp`/f.vma. */
async function plainFixture(tmp: string): Promise<string> {
  const archive = `${tmp}/f.vma`;
  const z = await run("zstd", ["-q", "-d", VZDUMP_FIXTURE, "-o", archive]);
  assert.equal(z.code, 0, z.stderr);
  return archive;
}

async function backingFile(path: string): Promise<string | undefined> {
  const r = await run("qemu-img", ["info", "-U", "--output=json", path]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.text)["backing-filename"];
}

async function toRaw(qcow2: string, raw: string): Promise<Uint8Array> {
  const r = await run("qemu-img", [
    "convert",
    "-f",
    "qcow2",
    "-O",
    "raw",
    qcow2,
    raw,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return await Deno.readFile(raw);
}

Deno.test({
  name:
    "restore --live of the Proxmox fixture exits 0 with the VM running from local qcow2 overlays: no backing file left, disks equal the archive's but for the guest's counter",
  ignore: !ready,
  async fn() {
    await withTempDir(async (tmp) => {
      const archive = await plainFixture(tmp);
      const x = await vmabak(["extract", archive, `${tmp}/out`]);
      assert.equal(x.code, 0, x.stderr);
      const before = await Deno.readFile(archive);
      const dir = `${tmp}/vm`;
      let pid: number | undefined;
      let qmp: QmpClient | undefined;
      try {
        const r = await vmabak(["restore", "--live", archive, dir]);
        pid = qemuPid(r.text);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.text, new RegExp(`^qmp ${dir}/qmp\\.sock$`, "m"));
        assert.match(r.stderr, /the VM runs: QEMU pid \d+/);
        assert.match(
          r.stderr,
          /streamed 80\.0 of 80\.0 MiB \(100%\), 2 of 2 disks done/,
        );
        assert.match(
          r.stderr,
          /done in [\d.]+ s \(the VM ran after [\d.]+ s\)/,
        );
        // vmabak is gone; QEMU runs on, from local files only.
        assert.ok(pid !== undefined && alive(pid), "QEMU runs after vmabak");
        assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
        for (const d of ["drive-scsi0", "drive-virtio1"]) {
          const path = `${dir}/disk-${d}.qcow2`;
          assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
          assert.equal(await backingFile(path), undefined, path);
        }
        qmp = await QmpClient.connect(`${dir}/qmp.sock`);
        const nodes = await qmp.execute<
          { "node-name": string; backing_file?: string }[]
        >("query-named-block-nodes", { flat: true });
        for (const n of ["drive-scsi0", "drive-virtio1"]) {
          const node = nodes.find((x) => x["node-name"] === n);
          assert.ok(node, n);
          assert.equal(node.backing_file, undefined, n);
        }
        const status = await qmp.execute<{ status: string }>("query-status");
        assert.equal(status.status, "running");
        // The guest counts on: in RAM, and on its disk.
        // SeaBIOS under TCG on a busy host may take seconds to boot it.
        await assertCounterAdvances(qmp, "after restore --live", 30_000);
        await qmp.execute("quit").catch(() => {});
        assert.ok(await gone(pid, 10_000), "QEMU ended after quit");
      } finally {
        await qmp?.close().catch(() => {});
        await killQemu(pid);
      }
      // The archive is untouched; the overlays alone are the disks.
      assert.ok(Buffer.compare(before, await Deno.readFile(archive)) === 0);
      const local = await toRaw(
        `${dir}/disk-drive-scsi0.qcow2`,
        `${tmp}/scsi0.raw`,
      );
      const archived = await Deno.readFile(`${tmp}/out/disk-drive-scsi0.raw`);
      assert.ok(
        diskCounter(local) > diskCounter(archived),
        `disk counter ${diskCounter(archived)} -> ${diskCounter(local)}`,
      );
      assert.equal(local.length, archived.length);
      const sector = COUNTER_DISK_OFFSET;
      local.fill(0, sector, sector + 512);
      archived.fill(0, sector, sector + 512);
      assert.ok(Buffer.compare(local, archived) === 0, "scsi0 differs");
      const virtio1 = await toRaw(
        `${dir}/disk-drive-virtio1.qcow2`,
        `${tmp}/virtio1.raw`,
      );
      // Later, resume.sh starts the VM again from the local files alone.
      const again = await startRestored(dir, ["-machine", "accel=tcg"]);
      try {
        const st = await again.qmp.execute<{ status: string }>("query-status");
        assert.equal(st.status, "running");
      } finally {
        await again.stop();
      }
      assert.ok(
        Buffer.compare(
          virtio1,
          await Deno.readFile(`${tmp}/out/disk-drive-virtio1.raw`),
        ) === 0,
        "virtio1 differs",
      );
    });
  },
});

Deno.test({
  name:
    "restore --live refuses, with one line and before creating anything: an existing DIR, hostile configs, RAM state, a zstd stream without seek table, standard input; a QEMU that does not start leaves no DIR",
  ignore: !ready,
  async fn() {
    await withTempDir(async (tmp) => {
      const archive = await plainFixture(tmp);
      await Deno.writeFile(`${tmp}/img.raw`, new Uint8Array(1 << 20).fill(7));
      const make = async (name: string, config: string, text: string) => {
        await Deno.writeTextFile(`${tmp}/${config}`, text);
        const c = await vmabak([
          "create",
          `${tmp}/${name}`,
          "-c",
          `${tmp}/${config}`,
          ...(config === "vmabak.json" && name === "state.vma"
            ? [`drive0=${tmp}/img.raw`, `vmstate=${tmp}/img.raw`]
            : config === "vmabak.json"
            ? [`drive0=${tmp}/img.raw`]
            : [`drive-scsi0=${tmp}/img.raw`]),
        ]);
        assert.equal(c.code, 0, c.stderr);
        await Deno.remove(`${tmp}/${config}`);
      };
      const hostileDisk = {
        ...goodDescription(),
        disks: [{
          ...(goodDescription().disks as Record<string, unknown>[])[0],
          node: "drive0,file.filename=/etc/shadow",
        }],
      };
      await make("node.vma", "vmabak.json", JSON.stringify(hostileDisk));
      await make(
        "boot.vma",
        "qemu-server.conf",
        "boot: order=scsi0;$(reboot)\nscsi0: local:vm-1-disk-0,size=1M\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n",
      );
      await make(
        "state.vma",
        "vmabak.json",
        JSON.stringify({ ...goodDescription(), vmstate: true }),
      );
      // Valid, but no QEMU has it: QEMU refuses to start, DIR is removed.
      await make(
        "machine.vma",
        "vmabak.json",
        JSON.stringify({ ...goodDescription(), machine: "pc-q35-99.0" }),
      );
      const cases: [string[], RegExp, number][] = [
        [
          [`${tmp}/machine.vma`],
          /Cannot start qemu-system-x86_64: .*unsupported machine type/,
          1,
        ],
        [[`${tmp}/node.vma`], /node name/, 1],
        [[`${tmp}/boot.vma`], /invalid boot device/, 1],
        [[`${tmp}/state.vma`], /RAM state.*use vmabak restore/, 1],
        [[VZDUMP_FIXTURE], /without a seek table.*zstd -d/, 1],
        [["-"], /needs a file, not standard input/, 2],
      ];
      for (const [args, why, code] of cases) {
        const dir = `${tmp}/new`;
        const r = await vmabak(["restore", "--live", ...args, dir]);
        await killQemu(qemuPid(r.text));
        assert.equal(r.code, code, `${args}: ${r.stderr}`);
        assert.match(oneLine(r.stderr), why);
        await assert.rejects(Deno.lstat(dir), `${args}: ${dir} was created`);
      }
      const speed = await vmabak([
        "restore",
        "--speed",
        "1M",
        archive,
        `${tmp}/new`,
      ]);
      assert.equal(speed.code, 2, speed.stderr);
      assert.match(oneLine(speed.stderr), /--speed goes with --live/);
      // An existing DIR, even empty, is refused and left as it was.
      await Deno.mkdir(`${tmp}/old`);
      const r = await vmabak(["restore", "--live", archive, `${tmp}/old`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(oneLine(r.stderr), /Cannot create target directory .*exist/);
      assert.deepEqual([...Deno.readDirSync(`${tmp}/old`)], []);
    });
  },
});

Deno.test({
  name:
    "restore --live stopped by SIGTERM while streaming: exit 1, its VM stopped, the overlay still backed by the archive; the same command again finishes it",
  ignore: !ready,
  async fn() {
    await withTempDir(async (tmp) => {
      // 32 MiB of data at 1 MiB/s (--speed): the signal comes long before the end.
      const size = 32 * 1024 * 1024;
      await Deno.writeFile(`${tmp}/img.raw`, new Uint8Array(size).fill(0x5a));
      await Deno.writeTextFile(
        `${tmp}/vmabak.json`,
        JSON.stringify({
          ...goodDescription(),
          disks: [{
            ...(goodDescription().disks as Record<string, unknown>[])[0],
            size,
          }],
        }),
      );
      const c = await vmabak([
        "create",
        `${tmp}/x.vma`,
        "-c",
        `${tmp}/vmabak.json`,
        `drive0=${tmp}/img.raw`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      await Deno.remove(`${tmp}/img.raw`);
      const dir = `${tmp}/vm`;
      const child = spawnVmabak([
        "restore",
        "--live",
        "--speed",
        "1M",
        `${tmp}/x.vma`,
        dir,
      ], { stderr: "piped" });
      let pid: number | undefined;
      let stderr = "";
      try {
        const reader = child.stderr.pipeThrough(new TextDecoderStream())
          .getReader();
        const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          stderr += value;
          const m = /the VM runs: QEMU pid (\d+)/.exec(stderr);
          if (m !== null && pid === undefined) {
            pid = Number(m[1]);
            child.kill("SIGTERM");
          }
        }
        clearTimeout(timer);
        const status = await child.status;
        assert.ok(pid !== undefined, stderr);
        assert.equal(status.code, 1, stderr);
        assert.match(stderr, /interrupted by SIGTERM.*the VM was stopped/);
        assert.ok(await gone(pid, 5000), "the VM vmabak started is stopped");
        const overlay = `${dir}/disk-drive0.qcow2`;
        const backing = await backingFile(overlay);
        assert.match(String(backing), /"driver":"nbd"/);
        assert.equal((await Deno.stat(`${dir}/resume.sh`)).isFile, true);
        // The same command again takes the overlay up and streams the rest.
        const again = await vmabak(["restore", "--live", `${tmp}/x.vma`, dir]);
        pid = qemuPid(again.text);
        assert.equal(again.code, 0, again.stderr);
        assert.match(
          again.stderr,
          /continuing the live restore .*1 of 1 disks/,
        );
        assert.ok(pid !== undefined && alive(pid), "QEMU runs after vmabak");
        assert.equal(await backingFile(overlay), undefined);
        await Deno.lstat(`${dir}/.vmabak-live`).then(
          () => assert.fail("the marker outlived the restore"),
          () => {},
        );
        // A third run finds an ordinary directory.
        const third = await vmabak(["restore", "--live", `${tmp}/x.vma`, dir]);
        assert.equal(third.code, 1, third.stderr);
        assert.match(oneLine(third.stderr), /already exists/);
        await killQemu(pid);
        const disk = await toRaw(overlay, `${tmp}/back.raw`);
        assert.equal(disk.length, size);
        assert.ok(
          disk.every((b) => b === 0x5a),
          "the disk is the archived one",
        );
      } finally {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
        await killQemu(pid);
      }
    });
  },
});

const HAVE_OVMF = await Deno.stat("/usr/share/OVMF/OVMF_VARS_4M.fd").then(
  () => true,
).catch(() => false);

Deno.test({
  name:
    "restore --live of a Proxmox config with an OVMF efidisk, a read-only drive and a device named with a comma, into a DIR named with quotes and $(...): flash and read-only drive copied whole, the disk streamed, paths passed exactly",
  ignore: !ready || !HAVE_OVMF,
  async fn() {
    await withTempDir(async (tmp) => {
      const sata = "drive-sata0,read-only";
      const conf = [
        "bios: ovmf",
        "boot: order=sata0",
        "efidisk0: local-lvm:vm-120-disk-0,efitype=4m,size=528K",
        "machine: q35",
        "memory: 64",
        "sata0: local-lvm:vm-120-disk-1,size=4M",
        "scsi3: local-lvm:vm-120-disk-2,size=2M,ro=1",
        "scsihw: virtio-scsi-pci",
        "#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:",
        `#qmdump#map:sata0:${sata}:local-lvm:raw:`,
        "#qmdump#map:scsi3:drive-scsi3:local-lvm:raw:",
        "",
      ].join("\n");
      await Deno.writeTextFile(`${tmp}/qemu-server.conf`, conf);
      await Deno.copyFile(
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
        `${tmp}/efi.raw`,
      );
      const sataData = new Uint8Array(4 << 20);
      for (let i = 0; i < sataData.length; i += 4096) sataData[i] = i >> 12;
      await Deno.writeFile(`${tmp}/sata.raw`, sataData);
      const scsiData = new Uint8Array(2 << 20).fill(3, 100_000, 200_000);
      await Deno.writeFile(`${tmp}/scsi.raw`, scsiData);
      const c = await vmabak([
        "create",
        `${tmp}/a.vma`,
        "-c",
        `${tmp}/qemu-server.conf`,
        `drive-efidisk0=${tmp}/efi.raw`,
        `${sata}=${tmp}/sata.raw`,
        `drive-scsi3=${tmp}/scsi.raw`,
      ]);
      assert.equal(c.code, 0, c.stderr);
      const dir = `${tmp}/it's "a",x;$(touch PWNED)`;
      let pid: number | undefined;
      let qmp: QmpClient | undefined;
      try {
        const r = await vmabak(["restore", "--live", `${tmp}/a.vma`, dir], {
          cwd: tmp,
        });
        pid = qemuPid(r.text);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /copying drive-efidisk0 whole/);
        assert.match(r.stderr, /copying drive-scsi3 whole/);
        assert.match(r.stderr, /1 of 1 disks done/);
        qmp = await QmpClient.connect(`${dir}/qmp.sock`);
        const block = await qmp.execute<
          { device: string; qdev?: string; inserted?: { file: string } }[]
        >("query-block");
        const files = new Map(
          block.map((b) => [b.device || b.qdev, b.inserted?.file]),
        );
        assert.equal(files.get("sata0"), `${dir}/disk-${sata}.qcow2`);
        assert.equal(files.get("scsi3"), `${dir}/disk-drive-scsi3.raw`);
        // With its size QEMU shows the flash as json:{...,"filename": PATH}.
        assert.ok(
          String(files.get("pflash1")).includes(
            `"filename": ${JSON.stringify(`${dir}/disk-drive-efidisk0.raw`)}`,
          ),
          files.get("pflash1"),
        );
        await qmp.execute("quit").catch(() => {});
        assert.ok(await gone(pid!, 10_000), "QEMU ended after quit");
      } finally {
        await qmp?.close().catch(() => {});
        await killQemu(pid);
      }
      for (const where of [tmp, dir]) {
        await assert.rejects(Deno.lstat(`${where}/PWNED`), where);
      }
      const overlay = `${dir}/disk-${sata}.qcow2`;
      assert.equal(await backingFile(overlay), undefined);
      assert.ok(
        Buffer.compare(await toRaw(overlay, `${tmp}/s.raw`), sataData) === 0,
        "sata0 streamed equal",
      );
      assert.ok(
        Buffer.compare(
          await Deno.readFile(`${dir}/disk-drive-scsi3.raw`),
          scsiData,
        ) === 0,
        "read-only scsi3 copied equal",
      );
      assert.equal(
        (await Deno.stat(`${dir}/disk-drive-efidisk0.raw`)).size,
        (await Deno.stat(`${tmp}/efi.raw`)).size,
      );
    });
  },
});

Deno.test({
  name:
    "restore --live LAST --base ... of a chain: every disk streamed from the newest archive holding each cluster equals the last instant's image",
  ignore: !ready,
  async fn() {
    await withTempDir(async (tmp) => {
      const chain = await buildChain(tmp);
      const [full, inc1, inc2, inc3] = chain.archives;
      const dir = `${tmp}/vm`;
      let pid: number | undefined;
      try {
        const r = await vmabak([
          "restore",
          "--live",
          inc3!,
          "--base",
          inc2!,
          "--base",
          inc1!,
          "--base",
          full!,
          dir,
        ]);
        pid = qemuPid(r.text);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /2 of 2 disks done/);
        assert.ok(pid !== undefined && alive(pid), "QEMU runs after vmabak");
      } finally {
        await killQemu(pid);
      }
      // No guest OS: nothing wrote to the disks; they are the last instant.
      const [a, b] = chain.states[3]!;
      for (const [name, want] of [["drive0", a], ["drive1", b]]) {
        const overlay = `${dir}/disk-${name}.qcow2`;
        assert.equal(await backingFile(overlay), undefined, overlay);
        await toRaw(overlay, `${tmp}/${name}.out`);
        await assertImage(`${tmp}/${name}.out`, want!);
      }
    });
  },
});
