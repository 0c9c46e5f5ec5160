/**
 * fs-freeze around the backup's instant, as vzdump does: freeze the guest's
 * file systems through its agent, fix the instant, thaw right after. A thaw
 * is owed from the moment the freeze is sent; it is registered on the
 * backup's undo stack, so it runs on every path (error, signal, timeout).
 *
 * A freeze that times out may still complete in the guest. The agent reads
 * commands one after the other, so the thaw is queued behind the freeze at
 * once and the connection stays open (an agent that loses its client may
 * drop what it had not read) until both answers came: at the end of the
 * backup vmabak waits up to three timeouts more for them.
 */
import { QgaClient } from "./client.ts";
import { QgaCommandError, QgaError } from "./errors.ts";

export interface FreezeOptions {
  /** Per command; the freeze itself included. */
  timeoutMs: number;
  /** Fail the backup when the guest cannot be frozen (else: crash-consistent, with a warning). */
  required: boolean;
  onWarning: (text: string) => void;
  /** The agent's connection, being opened; its opener closes it, a failure to open is handled here. */
  connection: Promise<QgaClient>;
}

export interface FreezeResult {
  /** How many file systems the agent froze; 0 when it did not (or did not say). */
  frozen: number;
  /** Thaws (once; later calls do nothing). Never throws: warns. */
  thaw(): Promise<void>;
}

export async function freezeGuest(
  stack: AsyncDisposableStack,
  options: FreezeOptions,
): Promise<FreezeResult> {
  let client: QgaClient | undefined;
  let state: "idle" | "freezing" | "frozen" | "queued" | "done" = "idle";
  const warn = (error: unknown) =>
    options.onWarning(
      `Cannot thaw the guest's file systems: ${(error as Error).message}`,
    );
  const thaw = async () => {
    if (client === undefined) return;
    if (state === "frozen") {
      state = "done";
      await client.execute<number>(
        "guest-fsfreeze-thaw",
        undefined,
        options.timeoutMs,
      ).catch(warn);
    } else if (state === "freezing") {
      state = "queued";
      await client.post("guest-fsfreeze-thaw").catch(warn);
    }
  };
  const finish = async () => {
    await thaw();
    if (state === "queued") {
      // The late freeze answer, then the thaw's: wait longer than for one
      // command, a guest left frozen is worse than a slow end of backup.
      const answers = await client!.drain(2, 3 * options.timeoutMs);
      if (answers.length < 2) {
        options.onWarning(
          "The guest agent had not answered the queued thaw when the backup ended",
        );
      }
    }
  };
  try {
    client = await options.connection;
    stack.defer(finish);
    state = "freezing";
    const frozen = await client.execute<number>(
      "guest-fsfreeze-freeze",
      undefined,
      options.timeoutMs,
    );
    state = "frozen";
    return { frozen, thaw };
  } catch (error) {
    const message = error instanceof QgaError
      ? error.message
      : `Cannot freeze the guest's file systems: ${(error as Error).message}`;
    // An error answer means nothing stays frozen (qemu-ga thaws what it
    // froze); a timeout or a lost connection may leave the guest frozen.
    if (error instanceof QgaCommandError) state = "done";
    else await thaw();
    if (options.required) {
      throw new QgaError(`${message} (--qga-required)`, null, { cause: error });
    }
    options.onWarning(`${message}; the backup goes on crash-consistent`);
    return { frozen: 0, thaw };
  }
}
