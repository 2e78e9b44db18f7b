"""B7, B8, B9, B11: escalate, unshare, mount, mknod, kernel attack surface, TIOCSTI."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import ctypes
import errno
import fcntl
import json
import os
import stat
import termios
import time

libc = ctypes.CDLL(None, use_errno=True)


def syscall(number, *args):
    result = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
    return "ok" if result >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")


def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc))


CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
report = {
    "setuid0": attempt(lambda: os.setuid(0)),
    "unshare_user": syscall(272, CLONE_NEWUSER),
    "unshare_mount_net": syscall(272, CLONE_NEWNS | CLONE_NEWNET),
    "mknod": attempt(lambda: os.mknod("/tmp/sda", 0o600 | stat.S_IFBLK, os.makedev(8, 0))),
    "chroot": attempt(lambda: os.chroot("/tmp")),
    "keyctl": syscall(250, 0, 0, 0, 0, 0),
    "add_key": syscall(248, 0, 0, 0, 0, 0),
    "bpf": syscall(321, 0, 0, 0),
    "perf_event_open": syscall(298, 0, 0, -1, -1, 0),
    "userfaultfd": syscall(323, 0),
    "ptrace_own_child": None,
    "tiocsti": {
        fd: attempt(lambda fd=fd: fcntl.ioctl(fd, termios.TIOCSTI, b"x")) for fd in (0, 1, 2)
    },
    "setuid_binaries": [],
}


def _mount():
    source = ctypes.c_char_p(b"none")
    if libc.mount(source, b"/tmp", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")


def _ptrace_own_child():
    # Same uid, same sandbox: allowed by Docker's default profile (B9), denied under bwrap.
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    outcome = syscall(101, 16, child, 0, 0)  # PTRACE_ATTACH
    os.kill(child, 9)
    os.waitpid(child, 0)
    return outcome


report["mount_tmpfs"] = attempt(_mount)
report["ptrace_own_child"] = _ptrace_own_child()
for root, _, files in os.walk("/usr"):
    for name in files:
        path = os.path.join(root, name)
        try:
            if os.lstat(path).st_mode & (stat.S_ISUID | stat.S_ISGID):
                report["setuid_binaries"].append(path)
        except OSError:
            pass
report["uid_after"] = [os.getuid(), os.geteuid()]
report["no_new_privs"] = [
    line.split()[1] for line in open("/proc/self/status") if line.startswith("NoNewPrivs")
]
report["cap_eff"] = [
    line.split()[1] for line in open("/proc/self/status") if line.startswith("CapEff")
]
json.dump(report, open("/out/report.json", "w"))
# B9: kill everything this uid can see. Only the sandbox's own processes must die.
report["visible_pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
json.dump(report, open("/out/report.json", "w"))
try:
    os.kill(-1, 9)
except ProcessLookupError:
    pass  # nothing else it may signal: PID 1 of the namespace is protected
