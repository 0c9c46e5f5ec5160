/**
 * The Proxmox side of `vmabak backup`: `--storage`, `--vmid`, vzdump naming
 * (`-o DIR/`), `--notes` and the run's `.log` beside the archive.
 */
import type { TextSink } from "./types.ts";
import { UsageError } from "../errors.ts";
import { writeFileExclusive } from "../io/safe_file.ts";
import { printable } from "../text/escape.ts";
import type { ProxmoxBackupOptions } from "../proxmox/backup_config.ts";
import {
  PVE_STORAGE_ID_RE,
  PVE_VMID_RE,
  vzdumpPaths,
} from "../proxmox/vzdump_name.ts";

const encoder = new TextEncoder();

export const PROXMOX_BACKUP_OPTIONS = {
  storage: { type: "string" },
  vmid: { type: "string" },
  notes: { type: "string" },
} as const;

export const PROXMOX_BACKUP_USAGE =
  "[--storage ID] [--vmid N] [--notes TEXT] (-o DIR/ with --vmid: vzdump names)";

export interface ProxmoxBackupArgs {
  /** The archive path (`-o`, or the vzdump name in `-o DIR/`). */
  output: string;
  proxmox: ProxmoxBackupOptions;
  notes: string | null;
  /** The run's log, with vzdump naming only. */
  logPath: string | null;
}

export function parseProxmoxBackupArgs(
  values: Record<string, unknown>,
  output: string,
  zstd: boolean,
  now: Date,
): ProxmoxBackupArgs {
  const storage = values.storage as string | undefined;
  if (storage !== undefined && !PVE_STORAGE_ID_RE.test(storage)) {
    throw new UsageError(
      `--storage must be a Proxmox storage id (a-z, 0-9, - _ .), got "${storage}"`,
    );
  }
  const vmidText = values.vmid as string | undefined;
  if (vmidText !== undefined && !PVE_VMID_RE.test(vmidText)) {
    throw new UsageError(
      `--vmid must be a Proxmox VM id from 100 to 999999999, got "${vmidText}"`,
    );
  }
  const vmid = vmidText === undefined ? undefined : Number(vmidText);
  const notes = (values.notes as string | undefined) ?? null;
  const proxmox: ProxmoxBackupOptions = {
    storage: storage ?? null,
    ...(vmid !== undefined ? { vmid } : {}),
  };
  if (output.endsWith("/")) {
    if (vmid === undefined) {
      throw new UsageError(
        "-o DIR/ names the archive as vzdump: give --vmid N",
      );
    }
    const paths = vzdumpPaths(output, vmid, now, zstd);
    return { output: paths.archive, proxmox, notes, logPath: paths.log };
  }
  if (notes !== null && output === "-") {
    throw new UsageError("--notes needs an archive file, not -");
  }
  return { output, proxmox, notes, logPath: null };
}

/** Keeps every line written to `sink` (for the `.log`), and passes it on. */
export class RunLog {
  readonly lines: string[] = [];
  readonly sink: TextSink;
  constructor(inner: TextSink) {
    this.sink = {
      line: (text) => {
        this.lines.push(`INFO: ${printable(text)}`);
        inner.line(text);
      },
      text: (text) => inner.text(text),
    };
  }

  /** Writes the notes (`ARCHIVE.notes`) and the log, each created exclusively. */
  async write(
    args: ProxmoxBackupArgs,
    committed: boolean,
    error?: unknown,
  ): Promise<void> {
    if (committed && args.notes !== null) {
      await writeFileExclusive(
        `${args.output}.notes`,
        encoder.encode(args.notes),
        { what: "notes", mode: 0o644 },
      );
    }
    if (args.logPath !== null) {
      const lines = [...this.lines];
      if (error !== undefined) {
        lines.push(
          `ERROR: ${
            (error instanceof Error ? error.message : String(error)).split(
              "\n",
            )[0]
          }`,
        );
      }
      await writeFileExclusive(
        args.logPath,
        encoder.encode(lines.join("\n") + "\n"),
        { what: "log", mode: 0o644 },
      );
    }
  }
}
