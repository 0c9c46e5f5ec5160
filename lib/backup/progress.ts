/** Pure rendering of backup progress: a bar for terminals, plain lines otherwise, JSON for tools. */

export interface Progress {
  done: number;
  total: number;
  elapsedMs: number;
  archiveBytes: number;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function rate(p: Progress): number {
  return p.elapsedMs > 0 ? p.done / (p.elapsedMs / 1000) : 0;
}

/** `[#####.....]  42% 1.2 GiB / 3.0 GiB  120.0 MiB/s  ETA 0:15` */
export function renderBar(p: Progress, width = 30): string {
  const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const fill = Math.round(frac * width);
  const r = rate(p);
  const eta = r > 0 ? (p.total - p.done) / r : Infinity;
  return `[${"#".repeat(fill)}${".".repeat(width - fill)}] ${
    String(Math.floor(frac * 100)).padStart(3)
  }% ` +
    `${formatBytes(p.done)} / ${formatBytes(p.total)}  ${
      formatBytes(r)
    }/s  ETA ${formatDuration(eta)}`;
}

/** `backup: 42% (1.2 GiB of 3.0 GiB, 120.0 MiB/s)` */
export function renderLine(p: Progress): string {
  const pct = p.total > 0
    ? Math.floor(Math.min(1, p.done / p.total) * 100)
    : 100;
  return `backup: ${pct}% (${formatBytes(p.done)} of ${formatBytes(p.total)}, ${
    formatBytes(rate(p))
  }/s)`;
}

export function renderJson(
  type: string,
  fields: Record<string, unknown>,
): string {
  return JSON.stringify({ type, ...fields });
}
