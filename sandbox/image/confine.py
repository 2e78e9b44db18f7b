"""The sandbox image's entrypoint: narrow the kernel surface, then exec the command.

    python3 -I /usr/local/lib/katakana/confine.py ARGV...

Loads a seccomp filter that stacks on the engine's own profile (the kernel applies
every installed filter, and the strictest answer wins), then ``execvp``s ARGV. Filters
survive ``execve`` and cannot be removed, so nothing run afterwards, the harness and the
learner's code included, can reach what is refused here.

Why a second filter: an engine's default profile is as old as the engine. Docker 20.10
(Debian bookworm's docker.io) still allows AF_VSOCK sockets and io_uring, which later
moby profiles block. The list is the bubblewrap backend's (``bwrap_backend.
DENIED_SYSCALLS``, which it applies itself with ``--seccomp``; a test keeps the two
equal): kernel interfaces a numpy or PyTorch submission never needs and that have a long
record of privilege escalations: io_uring, bpf, perf_event_open, userfaultfd, keyring
calls, ptrace and process_vm_*, mount and namespace calls, module and kexec calls (EPERM,
the answer moby's profiles give), and AF_VSOCK/AF_ALG sockets (EAFNOSUPPORT, as if the
kernel had no such family). Most of these Docker refuses already; refusing them twice
costs nothing and keeps an old engine from being the only guard. Other architectures'
syscalls (i386, x32) are killed, libseccomp's default for a foreign ABI.

Runs as the sandbox user, so the filter is loaded with no_new_privs (libseccomp's
default), which also keeps set-uid binaries from gaining privileges. If the filter cannot
be loaded the command does not run (exit 125 with a "confine:" line on stderr): a broken
image fails every run loudly instead of scoring unconfined, and the attack suite
(``tests/sandbox/test_attacks.py``) checks that the filter is in force.
"""

from __future__ import annotations

import errno
import os
import sys

AF_ALG = 38
AF_VSOCK = 40
REFUSED_FAMILIES = (AF_VSOCK, AF_ALG)
REFUSED_SYSCALLS = (
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "fanotify_init",
    "keyctl", "add_key", "request_key",
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "name_to_handle_at", "open_by_handle_at",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "acct", "swapon", "swapoff", "reboot", "quotactl",
)  # fmt: skip
CANNOT_CONFINE = 125  # as docker run's own "could not start" status


def build_filter():  # type: ignore[no-untyped-def]
    import seccomp  # Debian's python3-seccomp (libseccomp's own bindings)

    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in REFUSED_SYSCALLS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
    for family in REFUSED_FAMILIES:
        # The kernel reads the family as a 32-bit int: compare the low 32 bits only, or
        # socket(0x1_0000_0028) would pass the filter and still make an AF_VSOCK socket.
        domain = seccomp.Arg(0, seccomp.MASKED_EQ, 0xFFFFFFFF, family)
        for call in ("socket", "socketpair"):
            rules.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), call, domain)
    return rules


def main(argv: list[str]) -> int:
    if not argv:
        print("confine: no command given", file=sys.stderr)
        return CANNOT_CONFINE
    try:
        build_filter().load()
    except Exception as exc:  # noqa: BLE001 - any failure means: do not run unconfined
        reason = f"{type(exc).__name__}: {exc}"
        print(f"confine: cannot load the seccomp filter ({reason})", file=sys.stderr)
        return CANNOT_CONFINE
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"confine: cannot run {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127 if exc.errno == errno.ENOENT else 126
    return CANNOT_CONFINE  # not reached: execvp replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
