import assert from "node:assert/strict";
import { PVE_OSTYPES } from "./format.ts";
import { ostypeFromOsInfo } from "./ostype.ts";
import { DEBIAN_OSINFO } from "../../tests/helpers/fake_qga.ts";

/** Answers shaped as qemu-ga returns them (`{"return": ...}` unwrapped). */
const DEBIAN_12 = DEBIAN_OSINFO;

function windows(
  nt: string,
  build: string,
  variant: "client" | "server",
  versionId: string,
) {
  return {
    "name": "Microsoft Windows",
    "kernel-release": build,
    "version": "Microsoft Windows",
    "variant": variant,
    "pretty-name": "Windows",
    "version-id": versionId,
    "variant-id": variant,
    "kernel-version": nt,
    "machine": "x86_64",
    "id": "mswindows",
  };
}

function ostype(answer: unknown) {
  const r = ostypeFromOsInfo(answer);
  if (r.ostype !== null) assert.ok(r.ostype in PVE_OSTYPES);
  return r.ostype;
}

Deno.test("ostypeFromOsInfo(): Linux guests are l26 (2.6 and later) or l24", () => {
  assert.equal(ostype(DEBIAN_12), "l26");
  // No os-release at all: qemu-ga still sends uname's fields.
  assert.equal(
    ostype({
      "kernel-release": "2.6.32-754.el6.x86_64",
      "kernel-version": "#1 SMP Tue Jun 19 21:26:04 UTC 2018",
      "machine": "x86_64",
    }),
    "l26",
  );
  assert.equal(
    ostype({
      "id": "alpine",
      "kernel-release": "6.6.14-0-virt",
      "kernel-version": "#1-Alpine SMP PREEMPT_DYNAMIC 2024-01-26 09:43:18",
    }),
    "l26",
  );
  assert.equal(
    ostype({ "kernel-release": "2.4.37", "kernel-version": "#1 Sat Dec 1" }),
    "l24",
  );
  assert.equal(
    ostype({ "kernel-release": "7.0.1", "kernel-version": "#1 SMP" }),
    "l26",
  );
  const old = ostypeFromOsInfo({
    "kernel-release": "2.2.26",
    "kernel-version": "#1",
  });
  assert.deepEqual(old, {
    ostype: null,
    note: "ostype: Linux 2.2 has no Proxmox ostype, left out",
  });
  assert.equal(
    ostype({ "kernel-release": "weird", "kernel-version": "#1" }),
    null,
  );
});

Deno.test("ostypeFromOsInfo(): Windows by kernel version, build and client/server", () => {
  const cases: [ReturnType<typeof windows>, string][] = [
    [windows("5.0", "2195", "server", "2000"), "w2k"],
    [windows("5.1", "2600", "client", "xp"), "wxp"],
    [windows("5.2", "3790", "client", "N/A"), "wxp"], // XP x64
    [windows("5.2", "3790", "server", "2003"), "w2k3"],
    [windows("6.0", "6002", "client", "vista"), "wvista"],
    [windows("6.0", "6003", "server", "2008"), "w2k8"],
    // qemu-ga's table lost Windows 7's id to a missing comma: "" here.
    [windows("6.1", "7601", "client", ""), "win7"],
    [windows("6.1", "7601", "server", "2008r2"), "win7"],
    [windows("6.2", "9200", "client", "8"), "win8"],
    [windows("6.3", "9600", "client", "8.1"), "win8"],
    [windows("6.2", "9200", "server", "2012"), "win8"],
    [windows("6.3", "9600", "server", "2012r2"), "win8"],
    [windows("10.0", "19045", "client", "10"), "win10"],
    [windows("10.0", "10240", "client", "10"), "win10"],
    [windows("10.0", "22000", "client", "11"), "win11"],
    // An agent older than its Windows 11 row says "10": the build decides.
    [windows("10.0", "22631", "client", "10"), "win11"],
    [windows("10.0", "26100", "client", "11"), "win11"],
    [windows("10.0", "14393", "server", "2016"), "win10"],
    [windows("10.0", "17763", "server", "2019"), "win10"],
    [windows("10.0", "20348", "server", "2022"), "win11"],
    [windows("10.0", "26100", "server", "2025"), "win11"],
    // Without kernel numbers, qemu-ga's version-id.
    [{ ...windows("", "", "server", "2019") }, "win10"],
    [{ ...windows("", "", "client", "8.1") }, "win8"],
  ];
  for (const [answer, want] of cases) {
    assert.equal(
      ostype(answer),
      want,
      `${answer["kernel-version"]} ${answer["kernel-release"]} ${
        answer["variant-id"]
      } ${answer["version-id"]}`,
    );
  }
  assert.deepEqual(
    ostypeFromOsInfo(windows("12.0", "30000", "client", "N/A")),
    {
      ostype: null,
      note:
        "ostype: Windows 12.0 build 30000 (N/A) has no known Proxmox ostype, left out",
    },
  );
});

Deno.test("ostypeFromOsInfo(): Solaris kernels, BSDs as other, the rest left out", () => {
  assert.equal(
    ostype({
      "id": "openindiana",
      "kernel-release": "5.11",
      "kernel-version": "illumos-2ab5d5a5a1",
    }),
    "solaris",
  );
  assert.equal(
    ostype({
      "name": "FreeBSD",
      "kernel-release": "14.0-RELEASE",
      "version-id": "14.0",
      "kernel-version":
        "FreeBSD 14.0-RELEASE #0 releng/14.0-n265380-f9716eee8ab4: Fri Nov 10 05:57:23 UTC 2023",
      "machine": "amd64",
      "id": "freebsd",
    }),
    "other",
  );
  assert.deepEqual(ostypeFromOsInfo({ "id": "haiku", "kernel-release": "1" }), {
    ostype: null,
    note:
      'ostype: the guest agent names an OS vmabak does not know (id "haiku", kernel "1"), left out',
  });
});

Deno.test("ostypeFromOsInfo(): a hostile or broken answer yields no ostype and a printable note", () => {
  for (const bad of [null, 5, "l26", [], [DEBIAN_12]]) {
    assert.equal(ostype(bad), null);
  }
  // Fields of the wrong type are ignored, not trusted.
  assert.equal(
    ostype({ "kernel-release": 6, "kernel-version": ["#1"], "id": {} }),
    null,
  );
  // Names of Object.prototype are not table entries.
  assert.equal(ostype(windows("", "", "client", "constructor")), null);
  assert.equal(ostype(windows("", "", "client", "__proto__")), null);
  assert.equal(ostype({ ...windows("toString", "", "client", "") }), null);
  const r = ostypeFromOsInfo({ "id": "x\n\x1b[2Jy", "kernel-release": "z\r" });
  assert.equal(r.ostype, null);
  assert.equal(
    r.note,
    'ostype: the guest agent names an OS vmabak does not know (id "x\\n\\x1b[2Jy", kernel "z\\r"), left out',
  );
  // Nothing but table values, however the answer is crafted.
  assert.equal(
    ostype({ "id": "mswindows", "version-id": "l26\nmemory: 1" }),
    null,
  );
});
