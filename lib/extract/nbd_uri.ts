import { VmaError } from "../vma/errors.ts";

/** Where `extract --to` writes: a server address and an export name pattern. */
export interface NbdTarget {
  address: { path: string } | { hostname: string; port: number };
  /** The export name; `{}` stands for the device name; empty means the device name. */
  exportName: string;
}

/**
 * Parses `nbd+unix:///NAME?socket=PATH` or `nbd://HOST[:PORT]/NAME` (port
 * 10809 by default). NAME may be empty (each disk goes to the export named
 * as its device) or contain `{}` (replaced by the device name).
 */
export function parseNbdUri(uri: string): NbdTarget {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new VmaError(`Cannot use NBD target ${uri}: not a URI`);
  }
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (url.protocol === "nbd+unix:") {
    const path = url.searchParams.get("socket");
    if (!path) {
      throw new VmaError(
        `Cannot use NBD target ${uri}: nbd+unix needs ?socket=PATH`,
      );
    }
    return { address: { path }, exportName: name };
  }
  if (url.protocol === "nbd:") {
    const port = url.port === "" ? 10809 : Number(url.port);
    const hostname = url.hostname.replace(/^\[|\]$/g, "");
    if (hostname === "") {
      throw new VmaError(`Cannot use NBD target ${uri}: no host`);
    }
    return { address: { hostname, port }, exportName: name };
  }
  throw new VmaError(
    `Cannot use NBD target ${uri}: expected nbd+unix:///NAME?socket=PATH or nbd://HOST:PORT/NAME`,
  );
}

/** The export a device goes to (see `parseNbdUri`). */
export function exportFor(target: NbdTarget, device: string): string {
  if (target.exportName === "") return device;
  return target.exportName.replaceAll("{}", device);
}
