import assert from "node:assert/strict";
import { resumeArgs, resumeScript } from "./command_line.ts";
import { checkVmDescription } from "./description.ts";
import { goodDescription } from "./_test_description.ts";

Deno.test("resumeScript() run by a real sh passes each QEMU argument intact, whatever the name and directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = `${dir}/it's a "dir",node-name=x;$(touch PWNED)`;
    const desc = checkVmDescription({
      ...goodDescription(),
      name: `vm"; touch PWNED; # ' $(touch PWNED)`,
    });
    const script = resumeScript(desc, target, true);
    // The same script, with the program replaced by one printing its arguments.
    const printer = script.replace(
      /^exec qemu-system-x86_64/m,
      `exec printf '%s\\0'`,
    );
    const out = await new Deno.Command("sh", {
      args: ["-c", printer],
      cwd: dir,
      stdout: "piped",
    }).output();
    assert.ok(out.success);
    const got = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
    assert.deepEqual(got, resumeArgs(desc, target, true).flat());
    assert.equal(script.split("\n").filter((l) => l.startsWith("#")).length, 5);
    await assert.rejects(Deno.lstat(`${dir}/PWNED`));
    // Commas in the directory are doubled: QEMU reads them as part of the value.
    assert.ok(
      got.includes(
        `driver=file,filename=${dir}/it's a "dir",,node-name=x;$(touch PWNED)/disk-drive0.raw,node-name=vmabak-file0`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resumeArgs() refuses a description that did not pass the validator", () => {
  const bad = { ...goodDescription(), machine: "q35,memory-backend=x" };
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => resumeArgs(bad as any, "/tmp/x", false),
    /machine/,
  );
});

Deno.test("resumeArgs() leaves firmware flash out of the command line and names its file in a comment", () => {
  const base = goodDescription();
  const disks = base.disks as Record<string, unknown>[];
  const desc = checkVmDescription({
    ...base,
    disks: [...disks, {
      ...disks[0],
      name: "pflash1",
      node: "#block123",
      deviceId: "system.flash1",
      deviceType: "cfi.pflash01",
      pciAddr: null,
    }],
  });
  const args = resumeArgs(desc, "/r", false).flat();
  assert.ok(!args.some((a) => a.includes("pflash")), args.join(" "));
  assert.match(
    resumeScript(desc, "/r", false),
    /^# Not recreated: cfi\.pflash01 system\.flash1, restored as \/r\/disk-pflash1\.raw\.$/m,
  );
});
