/**
 * The guest of the vmstate tests: a 512-byte boot sector assembled from
 * `boot_counter.S` (see there). Forever it increments a counter in RAM at
 * `COUNTER_RAM_ADDRESS` and writes it to the disk at `COUNTER_DISK_OFFSET`.
 */

/** Guest-physical address of the RAM counter (read with HMP `xp /1wx`). */
export const COUNTER_RAM_ADDRESS = 0x7e00;
/** Byte offset on the boot disk of the sector holding the disk counter. */
export const COUNTER_DISK_OFFSET = 2048 * 512;

const CODE_HEX =
  "fa31c08ed88ec08ed0bc007cfb88163c7c66ff06007e66a1007e66a30080be2c7c" +
  "b800438a163c7ccd13ebe51000010000800000000800000000000000";

/** The boot sector: the code, zero padding, and the 0x55 0xAA signature. */
export function bootCounterSector(): Uint8Array {
  const sector = new Uint8Array(512);
  for (let i = 0; i < CODE_HEX.length / 2; i++) {
    sector[i] = parseInt(CODE_HEX.slice(2 * i, 2 * i + 2), 16);
  }
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** Reads the little-endian 32-bit counter the guest wrote into a disk image. */
export function diskCounter(image: Uint8Array): number {
  return new DataView(image.buffer, image.byteOffset + COUNTER_DISK_OFFSET, 4)
    .getUint32(0, true);
}
