"""Real failure injectors for the lifecycle tests, and the checks every test ends with.

Each injector is a real process or socket the test controls: a private redis-server
(restarted for real), a TCP proxy in front of PostgreSQL or the Docker engine (stopped =
the service is down: connections cut, new ones refused), a tiny SMTP server (closed,
then opened). Nothing here touches a service other sessions share, except the section
"real restarts": it restarts the machine's PostgreSQL cluster and Docker engine, and is
used only by ``test_restarts.py`` where the machine is the test run's alone (CI).
"""

from __future__ import annotations

import contextlib
import email
import os
import re
import selectors
import signal
import socket
import socketserver
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SEPARATOR = b"-" * 79


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- submissions


SUBMISSION_PY = """\
import os
import signal
import time
import numpy as np

time.sleep({sleep})
if {fail}:
    raise ValueError("a bug in the learner's own code")
if {selfkill}:
    os.kill(os.getpid(), signal.SIGKILL)  # exits like a sandbox killed from outside


def predict(test_data):
    # Darkest quadrant decides: not a good model, but a deterministic, real one.
    return (test_data[:, 0, 8:20, 8:20].mean(axis=(1, 2)) < 30).astype(np.int64)
"""


def submission_zip(
    directory: Path, *, sleep: float = 0.0, fail: bool = False, selfkill: bool = False
) -> Path:
    """A small verified-contract submission (``submission.py`` defining predict)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"sub-{sleep}-{int(fail)}-{int(selfkill)}.zip"
    if not path.exists():
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("submit_folder/", "")
            archive.writestr(
                "submit_folder/submission.py",
                SUBMISSION_PY.format(sleep=sleep, fail=fail, selfkill=selfkill),
            )
    return path


# --------------------------------------------------------------------------- redis


class RedisServer:
    """A private redis-server on its own port and directory; ``kill`` + ``start`` = restart."""

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.directory),
        ]  # fmt: skip
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - inherited by redis
        self.process = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL, as a crash: no final save beyond what the AOF already holds."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------- TCP proxy


class TcpProxy:
    """Forwards 127.0.0.1:port to a TCP address or a unix socket; ``stop`` = service down.

    Stopping closes the listening socket and every forwarded connection, so clients see
    exactly what a restarting PostgreSQL or Docker daemon shows them: connections reset,
    new connections refused. ``start`` again = the service is back on the same address.
    """

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _connect_target(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            return upstream
        return socket.create_connection(self.target)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._connect_target()
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in selector.select():
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            with self._lock:
                for sock in (a, b):
                    self._sockets.discard(sock)
                    sock.close()


# --------------------------------------------------------------------------- SMTP


@dataclass
class SmtpServer:
    """A minimal SMTP server (enough for Django's smtplib client) that keeps what it gets."""

    port: int = field(default_factory=free_port)
    messages: list[email.message.Message] = field(default_factory=list)
    # What it answers to RCPT TO: "550 no such user" makes a permanent refusal.
    rcpt_reply: bytes = b"250 ok"
    _server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"220 localhost test SMTP\r\n")
                while line := self.rfile.readline():
                    verb = line.strip().split(b" ", 1)[0].upper()
                    if verb in (b"EHLO", b"HELO"):
                        self.wfile.write(b"250-localhost\r\n250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        self.wfile.write(b"354 go ahead\r\n")
                        body = bytearray()
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            body += chunk[1:] if chunk.startswith(b"..") else chunk
                        outer.messages.append(email.message_from_bytes(bytes(body)))
                        self.wfile.write(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    elif verb == b"RCPT":
                        self.wfile.write(outer.rcpt_reply + b"\r\n")
                    else:  # MAIL, RCPT, RSET, NOOP
                        self.wfile.write(b"250 ok\r\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --------------------------------------------------------------------------- real restarts

# Where the restarted dockerd logs, as in scripts/setup (appended: the log of the daemon
# that was stopped stays readable after a failed test).
DOCKERD_LOG = "/var/log/katakana-dockerd.log"


def wait_for(check: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll ``check`` until true; return the seconds it took, raise after ``timeout``."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"{what}: not ready after {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - began


def postgres_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0


def _pg_ctlcluster(action: str, *, timeout: float) -> None:
    # The newest version under /etc/postgresql, as scripts/setup picks it.
    versions = os.listdir("/etc/postgresql")
    version = max(versions, key=lambda v: [int(part) for part in v.split(".") if part.isdigit()])
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True, capture_output=True, timeout=timeout,
    )  # fmt: skip


def restart_postgresql(*, timeout: float = 60) -> float:
    """Restart the machine's PostgreSQL cluster for real (fast shutdown: every client's
    connection is terminated) and wait until it accepts connections; return the seconds."""
    began = time.monotonic()
    _pg_ctlcluster("restart", timeout=timeout)
    wait_for(postgres_ready, timeout=timeout, what="PostgreSQL")
    return time.monotonic() - began


def ensure_postgresql(*, timeout: float = 60) -> None:
    """PostgreSQL accepts connections afterwards, whatever state a failed test left it in."""
    with contextlib.suppress(RuntimeError):
        wait_for(postgres_ready, timeout=10, what="PostgreSQL")  # a restart finishing
        return
    _pg_ctlcluster("start", timeout=timeout)
    wait_for(postgres_ready, timeout=timeout, what="PostgreSQL")


def docker_ready() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def dockerd_pids() -> list[int]:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def stop_dockerd(*, timeout: float = 60) -> float:
    """SIGTERM the Docker engine (a clean daemon stop: its containers are stopped) and wait
    until it has exited; SIGKILL if it will not. Return the seconds it took."""
    pids = dockerd_pids()
    if not pids:
        raise RuntimeError("no dockerd is running")
    began = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not set(pids) & set(dockerd_pids()), timeout=timeout, what="dockerd exit")
    except RuntimeError:
        for pid in set(pids) & set(dockerd_pids()):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not set(pids) & set(dockerd_pids()), timeout=10, what="dockerd kill")
    return time.monotonic() - began


def start_dockerd(*, timeout: float = 60) -> float:
    """Start the Docker engine as scripts/setup does (detached, its own session) and wait
    until ``docker info`` answers; return the seconds it took."""
    began = time.monotonic()
    subprocess.run(["bash", "-c", f"(setsid dockerd >>{DOCKERD_LOG} 2>&1 &)"], check=True)
    wait_for(docker_ready, timeout=timeout, what="dockerd")
    return time.monotonic() - began


def ensure_dockerd(*, timeout: float = 60) -> None:
    """The engine is up afterwards, whatever state a failed test left it in."""
    if docker_ready():
        return
    if dockerd_pids():  # stopping, or hung: finish the stop first
        stop_dockerd(timeout=timeout)
    start_dockerd(timeout=timeout)


# --------------------------------------------------------------------------- checks


def mailed_addresses(mail_dir: Path) -> list[str]:
    """The To: address of every message the file email backend wrote, one per message."""
    addresses = []
    for path in sorted(mail_dir.glob("*.log")) if mail_dir.is_dir() else []:
        for chunk in path.read_bytes().split(SEPARATOR):
            if chunk.strip():
                addresses.append(str(email.message_from_bytes(chunk.strip() + b"\n")["To"]))
    return addresses


def sandbox_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions ``marker`` (a private tmp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
            if marker in cmdline and "harness" in cmdline and "State:\tZ" not in status:
                pids.append(int(entry.name))
    return pids


def containers(prefix: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=katakana.run", "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [name for name in out.split() if name.startswith(prefix + "-")]


def task_results(log: Path) -> list[str]:
    """What each score_submission task returned, from a worker's log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return re.findall(
        r"submissions\.score_submission\[[^\]]+\] succeeded in [\d.]+s: '([\w-]+)'", text
    )


def stop_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@contextlib.contextmanager
def paused(pid_group: int) -> Iterator[None]:
    os.killpg(pid_group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid_group, signal.SIGCONT)
