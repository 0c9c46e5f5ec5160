/** A Proxmox VM config (`qemu-server.conf`) that vmabak cannot use. */
export class ProxmoxConfigError extends Error {
  override name = "ProxmoxConfigError";
  /** 1-based line of the config, when the problem is on one line. */
  readonly line: number | null;
  /** The key concerned, when there is one. */
  readonly key: string | null;
  constructor(
    message: string,
    fields: { line?: number; key?: string } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.line = fields.line ?? null;
    this.key = fields.key ?? null;
  }
}
