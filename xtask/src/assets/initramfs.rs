//! The test initramfs: Debian's static busybox and an `/init` script that reports what
//! Linux found, one console line each behind [`PREFIX`], and powers the machine off.
//!
//! The archive is a newc cpio ([`super::cpio`]), uncompressed (Linux takes an
//! uncompressed initramfs as it is, and the 2 MiB it weighs cost QEMU nothing to load):
//!
//! | member | what |
//! |---|---|
//! | `bin/`, `bin/busybox` | the static arm64 busybox from `busybox-static` |
//! | `dev/`, `dev/console` | the console node (char 5:1), so the kernel can give `/init` its stdio before devtmpfs is mounted |
//! | `proc/`, `sys/`, `tmp/` | mount points |
//! | `init` | [`init_script`] |
//!
//! What `/init` prints, in order (the tests and the bench read these lines):
//!
//! ```text
//! INITRAMFS: cmdline: <the contents of /proc/cmdline>
//! INITRAMFS: dmesg: <each kernel line about the boot EL, KVM, the CPUs and the machine>
//! INITRAMFS: cpus online: <e.g. 0-3>
//! INITRAMFS: /dev/kvm present|absent
//! INITRAMFS: reserved: <start>-<end>          (each "reserved" /proc/iomem range covering the stub's RAM)
//! INITRAMFS: reserved: none covers 40100000-40107fff
//! INITRAMFS: iomem reserved: <start>-<end>     (every "reserved" range of /proc/iomem)
//! INITRAMFS: stress: ...                       (only with initramfs.stress=1)
//! INITRAMFS: stress done, cpus online: <...>   (only with initramfs.stress=1)
//! INITRAMFS MARKER DONE
//! ```
//!
//! then `poweroff -f`, which ends in PSCI SYSTEM_OFF, so QEMU exits with status 0.

use super::cpio::{self, Entry};

/// What every report line of `/init` starts with.
pub const PREFIX: &str = "INITRAMFS: ";

/// The last line `/init` prints before powering off.
pub const MARKER_DONE: &str = "INITRAMFS MARKER DONE";

/// The command-line word that turns the stress step on.
pub const STRESS_OPTION: &str = "initramfs.stress=1";

/// The start of hypstub's resident stub RAM on QEMU virt (`RESIDENT`, docs/memory-map.md):
/// with `hypstub.el=1` the firmware reserves it in the DTB, and arm64 Linux lists
/// memblock-reserved memory as `reserved` in /proc/iomem.
pub const STUB_RAM_START: u64 = crate::memory_map::qemu_virt::RESIDENT.start;

/// The last byte of the stub's resident RAM.
pub const STUB_RAM_LAST: u64 = crate::memory_map::qemu_virt::RESIDENT.end - 1;

/// The `/init` script.
///
/// The stress step (with [`STRESS_OPTION`]) first fills 70 % of the free RAM with a tmpfs
/// file, so that the kernel hands out nearly every page it believes it owns (a page of the
/// stub's RAM among them would overwrite the stub), then takes CPU 1 offline and online
/// again: PSCI CPU_OFF and CPU_ON, which at EL1 go through the resident stub (it traps
/// the SMC and starts the CPU at its own EL2 entry), so a damaged stub shows as a CPU that
/// does not come back.
pub fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
# hypstub's test initramfs (xtask/src/assets/initramfs.rs): report what Linux found on
# the console, one line each behind "{PREFIX}", then power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() {{ echo "{PREFIX}$*"; }}

cmdline=$(cat /proc/cmdline)
say "cmdline: $cmdline"
dmesg | grep -E 'CPU: All CPU|kvm \[|SMP: Total|Booted secondary|Machine model' |
while read -r line; do say "dmesg: $line"; done
say "cpus online: $(cat /sys/devices/system/cpu/online)"
if [ -e /dev/kvm ]; then say "/dev/kvm present"; else say "/dev/kvm absent"; fi

# The "reserved" ranges of /proc/iomem that cover hypstub's stub RAM.
covering=$(sed -n 's/^ *\([0-9a-f]*\)-\([0-9a-f]*\) : reserved$/\1 \2/p' /proc/iomem |
while read -r start end; do
    if [ $((0x$start)) -le $(({STUB_RAM_START:#x})) ] && [ $((0x$end)) -ge $(({STUB_RAM_LAST:#x})) ]; then
        echo "$start-$end"
    fi
done)
if [ -n "$covering" ]; then
    for range in $covering; do say "reserved: $range"; done
else
    say "reserved: none covers {STUB_RAM_START:x}-{STUB_RAM_LAST:x}"
fi
# Every "reserved" range, for boards whose stub lives elsewhere (the Raspberry Pi 4).
sed -n 's/^ *\([0-9a-f]*-[0-9a-f]*\) : reserved$/\1/p' /proc/iomem |
while read -r range; do say "iomem reserved: $range"; done

case " $cmdline " in
*" {STRESS_OPTION} "*)
    free_kib=$(sed -n 's/^MemFree: *\([0-9]*\) kB$/\1/p' /proc/meminfo)
    fill_mib=$((free_kib * 7 / 10 / 1024))
    mount -t tmpfs -o size=100% tmpfs /tmp
    say "stress: writing $fill_mib MiB to tmpfs ($free_kib KiB free)"
    dd if=/dev/zero of=/tmp/fill bs=1M count=$fill_mib 2>/dev/null || say "stress: dd failed"
    say "stress: $(grep '^MemFree:' /proc/meminfo | tr -s ' ') left"
    echo 0 > /sys/devices/system/cpu/cpu1/online
    say "stress: cpu1 offline, cpus online: $(cat /sys/devices/system/cpu/online)"
    echo 1 > /sys/devices/system/cpu/cpu1/online
    rm -f /tmp/fill
    say "stress done, cpus online: $(cat /sys/devices/system/cpu/online)"
    ;;
esac

echo "{MARKER_DONE}"
poweroff -f
"#
    )
}

/// The initramfs with `busybox` (the static binary's bytes) and [`init_script`].
pub fn build(busybox: &[u8]) -> Vec<u8> {
    let init = init_script();
    let dir = |name| Entry::Dir { name, perm: 0o755 };
    cpio::archive(&[
        dir("bin"),
        Entry::File {
            name: "bin/busybox",
            perm: 0o755,
            data: busybox,
        },
        dir("dev"),
        Entry::CharDev {
            name: "dev/console",
            perm: 0o600,
            major: 5,
            minor: 1,
        },
        Entry::File {
            name: "init",
            perm: 0o755,
            data: init.as_bytes(),
        },
        dir("proc"),
        dir("sys"),
        Entry::Dir {
            name: "tmp",
            perm: 0o1777,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_uses_the_constants() {
        let script = init_script();
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains("$((0x40100000))"), "{script}");
        assert!(script.contains("$((0x40107fff))"), "{script}");
        assert!(script.contains("none covers 40100000-40107fff"));
        assert!(script.contains("*\" initramfs.stress=1 \"*)"));
        assert!(script.contains("say() { echo \"INITRAMFS: $*\"; }"));
        assert!(script.ends_with("echo \"INITRAMFS MARKER DONE\"\npoweroff -f\n"));
    }

    #[test]
    fn archive_holds_init_and_busybox() {
        let bytes = build(b"\x7fELF fake busybox");
        let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"bin/busybox\0"));
        assert!(find(b"\x7fELF fake busybox"));
        assert!(find(b"dev/console\0"));
        assert!(find(init_script().as_bytes()));
        assert!(bytes.starts_with(cpio::MAGIC));
        assert_eq!(build(b"x"), build(b"x"), "reproducible");
    }
}
