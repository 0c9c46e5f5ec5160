/**
 * The push data path: QEMU's backup jobs (copy-before-write inside QEMU)
 * write every disk over NBD into vmabak's own server, on a unix socket in
 * the private directory; whole clusters go into the archive as they arrive.
 * No temporary storage, but a guest write to a range not copied yet waits
 * until vmabak has taken the old data.
 */
import { NbdServer } from "../nbd/server.ts";
import { ClusterAssembler } from "./cluster_assembler.ts";
import { type BackupContext, deferQmp, nameFor } from "./context.ts";
import type { DataPath, DataPathOptions } from "./data_path.ts";
import { JobGroup } from "./job_group.ts";
import { deleteNodes } from "./jobs.ts";
import type { Tracking } from "./tracking.ts";

export class PushPath implements DataPath {
  readonly mode = "push";
  readonly needsStop = false;
  #ctx: BackupContext;
  #options: DataPathOptions;
  #assemblers: ClusterAssembler[];
  #server: NbdServer | undefined;
  #targets: string[] = [];
  #jobs: JobGroup | undefined;

  constructor(ctx: BackupContext, options: DataPathOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#assemblers = ctx.disks.map((d) =>
      new ClusterAssembler({
        devId: d.devId,
        size: d.disk.size,
        sink: ctx.clusters,
      })
    );
  }

  get done(): number {
    return this.#assemblers.reduce((a, x) => a + x.received, 0);
  }

  async prepare(): Promise<void> {
    const { ctx } = { ctx: this.#ctx };
    const server = await NbdServer.listen({
      path: `${ctx.privateDir}/nbd.sock`,
      exports: ctx.disks.map((d) => ({
        name: `disk${d.index}`,
        size: d.disk.size,
        handler: this.#assemblers[d.index]!,
      })),
    });
    this.#server = server;
    ctx.stack.defer(() => server.close());
    for (const d of ctx.disks) {
      const node = nameFor(ctx, `tgt${d.index}`);
      await ctx.qmp.execute("blockdev-add", {
        driver: "nbd",
        "node-name": node,
        server: { type: "unix", path: server.path },
        export: `disk${d.index}`,
        "reconnect-delay": 5,
      });
      this.#targets.push(node);
      deferQmp(ctx, () => deleteNodes(ctx.qmp, [node]));
    }
  }

  async snapshot(tracking?: Tracking): Promise<void> {
    const ctx = this.#ctx;
    const speed = this.#options.holdJobs ? 1 : this.#options.speed;
    this.#jobs = await JobGroup.start(
      ctx,
      ctx.disks.map((d) => ({
        id: nameFor(ctx, `job${d.index}`),
        backup: {
          device: d.disk.node,
          target: this.#targets[d.index],
          sync: "full",
          ...(speed ? { speed } : {}),
          "x-perf": { "max-workers": this.#options.maxWorkers ?? 8 },
        },
      })),
      tracking?.actions() ?? [],
    );
    tracking?.added();
  }

  async afterInstant(): Promise<void> {
    if (!this.#options.holdJobs) return;
    for (const id of this.#jobs!.ids) {
      await this.#ctx.qmp.execute("block-job-set-speed", {
        device: id,
        speed: this.#options.speed ?? 0,
      });
    }
  }

  async copy(onProgress: () => void): Promise<void> {
    const ctx = this.#ctx;
    const server = this.#server!;
    await this.#jobs!.waitPending(() => {
      ctx.failure.throwIfFailed();
      if (server.error) throw server.error;
      onProgress();
    });
    await this.#jobs!.finalize();
    ctx.failure.throwIfFailed();
    if (server.error) throw server.error;
    for (const [i, a] of this.#assemblers.entries()) {
      if (!a.isComplete()) {
        throw new Error(
          `Cannot finish backup: disk ${
            ctx.disks[i]!.disk.name
          } misses clusters ${a.missingClusters(3).join(", ")}`,
        );
      }
    }
    await deleteNodes(ctx.qmp, this.#targets);
  }
}
