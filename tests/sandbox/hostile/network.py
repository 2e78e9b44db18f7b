"""B1 and B2: reach the host, the internet, metadata, DNS; odd socket families."""
# ruff: noqa: SIM115, SIM105  (hostile one-shot programs: terse on purpose)

import errno
import json
import socket


def connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return "connected"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc))


def make_socket(family, kind, proto=0):
    try:
        socket.socket(family, kind, proto).close()
        return "created"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc))


def resolve(name):
    try:
        return socket.getaddrinfo(name, 80)[0][4][0]
    except OSError as exc:
        return type(exc).__name__


interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
report = {
    "interfaces": interfaces,
    "connect": {
        f"{host}:{port}": connect(host, port)
        for host, port in [
            ("127.0.0.1", 6379),
            ("127.0.0.1", 5432),
            ("1.1.1.1", 53),
            ("1.1.1.1", 443),
            ("169.254.169.254", 80),
            ("172.17.0.1", 2375),
        ]
    },
    "dns": resolve("pypi.org"),
    "sockets": {
        "raw": make_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        "packet": make_socket(17, socket.SOCK_RAW),
    },
}
json.dump(report, open("/out/report.json", "w"))
