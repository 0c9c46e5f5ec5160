import { parseCommandArgs, parseSize } from "./args.ts";
import type { Command } from "./types.ts";
import { readConfigFiles, zstdLevelFor } from "./create.ts";
import { parseQgaArgs, QGA_OPTIONS, QGA_USAGE } from "./backup_qga.ts";
import {
  parseProxmoxBackupArgs,
  PROXMOX_BACKUP_OPTIONS,
  PROXMOX_BACKUP_USAGE,
  RunLog,
} from "./backup_proxmox.ts";
import { UsageError } from "../errors.ts";
import { openArchiveOutput } from "../io/output.ts";
import { backupVm } from "../backup/backup.ts";
import {
  formatBytes,
  type Progress,
  renderBar,
  renderJson,
  renderLine,
} from "../backup/progress.ts";
import { printable } from "../text/escape.ts";
import { readArchiveHeader } from "./archive.ts";

const USAGE =
  "vmabak backup --qmp SOCKET -o ARCHIVE|- [--mode pull|push] [--fleecing-dir DIR] [--zstd[=LEVEL]] [-c CONFIGFILE]... [--drive NAME]... " +
  "[--speed BYTES_PER_S] [--max-workers N] [--vmstate] [--since PREV|- [--or-full]] [--no-track] [--json] " +
  PROXMOX_BACKUP_USAGE + " " + QGA_USAGE;

export const backupCommand: Command = {
  name: "backup",
  summary:
    "back up a running QEMU VM (every disk, one instant) over QMP and NBD",
  usage: USAGE,
  async run(ctx) {
    const { values } = parseCommandArgs(ctx.args, {
      qmp: { type: "string" },
      output: { type: "string", short: "o" },
      config: { type: "string", short: "c", multiple: true },
      drive: { type: "string", multiple: true },
      speed: { type: "string" },
      "max-workers": { type: "string" },
      json: { type: "boolean" },
      vmstate: { type: "boolean" },
      zstd: { type: "string" },
      mode: { type: "string" },
      since: { type: "string" },
      "or-full": { type: "boolean" },
      "no-track": { type: "boolean" },
      "fleecing-dir": { type: "string" },
      "no-trim": { type: "boolean" },
      ...PROXMOX_BACKUP_OPTIONS,
      ...QGA_OPTIONS,
    }, { min: 0, max: 0, usage: USAGE });
    if (typeof values.qmp !== "string") {
      throw new UsageError(`--qmp SOCKET is required (usage: ${USAGE})`);
    }
    if (typeof values.output !== "string") {
      throw new UsageError(`-o ARCHIVE is required (usage: ${USAGE})`);
    }
    const mode = values.mode ?? "pull";
    if (mode !== "push" && mode !== "pull") {
      throw new UsageError(`--mode must be pull or push, got "${mode}"`);
    }
    const speed = values.speed === undefined
      ? undefined
      : parseSize(values.speed as string, "--speed");
    const workers = values["max-workers"] === undefined
      ? undefined
      : Number(values["max-workers"]);
    if (
      workers !== undefined &&
      !(Number.isInteger(workers) && workers >= 1 && workers <= 64)
    ) {
      throw new UsageError("--max-workers must be an integer from 1 to 64");
    }
    if (values["or-full"] === true && typeof values.since !== "string") {
      throw new UsageError("--or-full goes with --since PREV");
    }
    // The base's uuid, chain and disks come from its header, read before
    // anything is written. `-`: from standard input (the base usually lives
    // where the archives go, not on the VM's host: `ssh HOST vmabak backup
    // --since - -o - < LAST.vma > NEW.vma`); only the header is read, then
    // the input is let go.
    const since = typeof values.since === "string"
      ? {
        label: values.since === "-"
          ? "the archive on standard input"
          : values.since,
        header: await readArchiveHeader(values.since, ctx),
      }
      : undefined;
    const configs = await readConfigFiles(
      (values.config as string[] | undefined) ?? [],
    );
    const json = values.json === true;
    const tty = ctx.stderrIsTerminal && !json;
    let lastLine = 0;
    const onProgress = (p: Progress) => {
      const now = performance.now();
      if (json) {
        if (now - lastLine >= 1000 || p.done >= p.total) {
          lastLine = now;
          ctx.stderr.line(
            renderJson("progress", {
              done: p.done,
              total: p.total,
              archiveBytes: p.archiveBytes,
            }),
          );
        }
      } else if (tty) {
        ctx.stderr.text(`\r${renderBar(p)}`);
      } else if (now - lastLine >= 5000) {
        lastLine = now;
        ctx.stderr.line(renderLine(p));
      }
    };

    const zstd = zstdLevelFor(values.output, values.zstd);
    const pve = parseProxmoxBackupArgs(
      values,
      values.output,
      zstd !== undefined,
      new Date(),
    );
    const log = new RunLog(ctx.stderr);
    ctx = { ...ctx, stderr: log.sink };
    const output = await openArchiveOutput(
      pve.output,
      ctx.stdout,
      // One Worker: the backup's reader and QEMU share the other core, and
      // a second Worker cost 20 MiB for 10% (2 GiB pull, measured).
      zstd === undefined ? {} : { zstd, zstdWorkers: 1 },
    );
    let committed = false;
    try {
      const result = await backupVm({
        qmpPath: values.qmp,
        sink: output,
        configs,
        drives: (values.drive as string[] | undefined) ?? [],
        signal: ctx.signal,
        onProgress,
        vmstate: values.vmstate === true,
        mode,
        ...(since !== undefined ? { since } : {}),
        ...(values["or-full"] === true ? { orFull: true } : {}),
        ...(values["no-track"] === true ? { track: false } : {}),
        ...(values["no-trim"] === true ? { trim: false } : {}),
        ...(typeof values["fleecing-dir"] === "string"
          ? { fleecingDir: values["fleecing-dir"] }
          : {}),
        ...(speed !== undefined ? { speed } : {}),
        ...(workers !== undefined ? { maxWorkers: workers } : {}),
        proxmox: pve.proxmox,
        ...parseQgaArgs(values),
        onNotice: (text) => ctx.stderr.line(`backup: warning: ${text}`),
        onStarted: (info) => {
          if (json) {
            ctx.stderr.line(renderJson("started", { disks: info.disks }));
          } else if (!tty) {
            ctx.stderr.line(
              `backup: started, disks ${
                info.disks.map((d) => printable(d)).join(", ")
              }`,
            );
          }
        },
      });
      await output.commit();
      committed = true;
      if (tty) ctx.stderr.text("\n");
      if (result.fullInstead !== undefined && !json) {
        ctx.stderr.line(
          `backup: ${
            result.fullInstead.replace(/; take a full backup.*$/, "")
          }: took a full backup instead (--or-full)`,
        );
      }
      const summary =
        `backup: done, ${formatBytes(result.bytes)} of disks in ${
          result.seconds.toFixed(1)
        } s, ` +
        `archive ${formatBytes(result.archiveBytes)}${
          output.path === "-" ? "" : ` in ${output.path}`
        }` +
        (result.vmstate
          ? `; VM state ${formatBytes(result.vmstate.bytes)}`
          : "") +
        (result.frozen !== undefined
          ? `, ${result.frozen.filesystems} guest file systems frozen ${
            result.frozen.ms.toFixed(1)
          } ms`
          : "") +
        (result.pausedMs !== undefined
          ? `, guest paused ${result.pausedMs.toFixed(1)} ms`
          : "") +
        (result.incremental !== undefined
          ? `; incremental since ${printable(since!.label)}: ${
            Object.entries(result.incremental).map(([d, n]) =>
              `${printable(d)} ${n} clusters`
            ).join(", ")
          } changed`
          : "");
      ctx.stderr.line(
        json
          ? renderJson("done", { ...result, description: undefined })
          : summary,
      );
      if (values.vmstate === true && !json) {
        ctx.stderr.line(
          "backup: note: Proxmox's restore ignores the RAM state (vmstate); vmabak restore uses it",
        );
      }
      await log.write(pve, committed);
    } catch (error) {
      if (tty) ctx.stderr.text("\n");
      if (!committed) await output.abort();
      await log.write(pve, committed, error).catch(() => {});
      throw error;
    }
  },
};
