/**
 * Makes a fresh directory only the current user can enter (mode 0700), for
 * the NBD and migration sockets: nothing else can connect to them.
 */
export async function makePrivateDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o700);
  const mode = (await Deno.stat(dir)).mode! & 0o777;
  if (mode !== 0o700) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(
      `Cannot make private directory ${dir}: mode is ${
        mode.toString(8)
      }, not 700`,
    );
  }
  return dir;
}
