/**
 * `backup --qga`: one connection to the guest agent for the whole run. It
 * is opened before the Proxmox config is generated, tells the guest's OS
 * (`ostype`, which QMP cannot), and later freezes the file systems around
 * the instant (qga/freeze.ts, which reports a connection that failed).
 */
import { QgaClient } from "../qga/client.ts";
import { QgaError } from "../qga/errors.ts";
import { type OstypeAnswer, ostypeFromOsInfo } from "../proxmox/ostype.ts";
import { printable } from "../text/escape.ts";

/** Starts connecting; the connection is closed when `stack` unwinds. */
export function openGuestAgent(
  stack: AsyncDisposableStack,
  options: { path: string; timeoutMs: number },
): Promise<QgaClient> {
  const connection = QgaClient.connect(options.path, options.timeoutMs);
  // A failure is the freeze's to report (or to fail on, --qga-required).
  connection.catch(() => {});
  stack.defer(async () => {
    (await connection.catch(() => null))?.close();
  });
  return connection;
}

/**
 * The guest's `ostype` from `guest-get-osinfo`; null with a note when the
 * agent cannot tell, and without one when it could not even be reached.
 */
export async function guestOstype(
  connection: Promise<QgaClient>,
  timeoutMs: number,
): Promise<OstypeAnswer | null> {
  const client = await connection.catch(() => null);
  if (client === null) return null;
  try {
    return ostypeFromOsInfo(
      await client.execute<unknown>("guest-get-osinfo", undefined, timeoutMs),
    );
  } catch (error) {
    // The freeze comes next on this connection and says what broke, if it stays broken.
    const why = error instanceof QgaError
      ? error.message
      : `Cannot run guest agent command guest-get-osinfo: ${
        printable(String((error as Error)?.message ?? error), 200)
      }`;
    return { ostype: null, note: `ostype: ${why}, left out` };
  }
}
