/**
 * TRIMs of what is stored, sent without waiting for each reply: at most
 * `limit` in flight. The first failure is kept (as `wrap` makes it) and
 * thrown by the next `send` or by `drain`.
 */
import { InFlight } from "../io/in_flight.ts";
import type { NbdClient } from "../nbd/client.ts";

export class TrimQueue {
  #inFlight = new InFlight();
  #error: unknown;
  readonly #limit: number;
  readonly #wrap: (error: unknown, offset: number) => unknown;

  constructor(
    limit: number,
    wrap: (error: unknown, offset: number) => unknown = (error) => error,
  ) {
    this.#limit = limit;
    this.#wrap = wrap;
  }

  /** Sends one TRIM; waits while `limit` are in flight. */
  async send(client: NbdClient, offset: number, length: number): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    this.#inFlight.track(
      client.trim(offset, length).catch((error) => {
        this.#error ??= this.#wrap(error, offset);
      }),
    );
    await this.#inFlight.waitBelow(this.#limit);
  }

  /** Waits for every TRIM's reply; throws the first failure. */
  async drain(): Promise<void> {
    await this.#inFlight.idle();
    if (this.#error !== undefined) throw this.#error;
  }
}
