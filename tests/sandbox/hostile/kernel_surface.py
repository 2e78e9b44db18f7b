"""B2: AF_VSOCK (the hypervisor's channel on a VM), AF_ALG, io_uring."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import ctypes
import errno
import json
import socket

libc = ctypes.CDLL(None, use_errno=True)


def make_socket(family, kind):
    try:
        socket.socket(family, kind).close()
        return "created"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc))


def raw_socket(family, kind):
    """socket(2) with a 64-bit family: the kernel keeps the low 32 bits only."""
    args = (ctypes.c_long(family), ctypes.c_long(kind), ctypes.c_long(0))
    fd = libc.syscall(ctypes.c_long(41), *args)
    if fd >= 0:
        return "created"
    return errno.errorcode.get(ctypes.get_errno(), "?")


def io_uring_setup():
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed: valid
    fd = libc.syscall(ctypes.c_long(425), ctypes.c_long(1), params)
    return "ok" if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")


report = {
    "vsock": make_socket(40, socket.SOCK_STREAM),
    "vsock_high_bits": raw_socket((1 << 32) | 40, socket.SOCK_STREAM),
    "alg": make_socket(38, socket.SOCK_SEQPACKET),
    "io_uring_setup": io_uring_setup(),
}
json.dump(report, open("/out/report.json", "w"))
