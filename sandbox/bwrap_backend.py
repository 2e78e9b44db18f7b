"""Bubblewrap backend: the same ``RunSpec`` as Docker, for hosts without a Docker engine.

Isolation (what each piece relies on):

* Namespaces: ``--unshare-all --unshare-user`` (user, mount, pid, net, ipc, uts, cgroup)
  with ``--disable-userns`` (no nested ``unshare -U``), ``--new-session`` (no TIOCSTI,
  CVE-2017-5226) and ``--die-with-parent``. The root is an empty tmpfs remounted
  read-only; the image's ``/usr``, ``/etc``, ``/var``, ``/opt`` are bound read-only,
  ``/tmp`` and ``/dev/shm`` are size-capped tmpfs (``--size``), only ``/out`` is writable,
  and it is a tmpfs of the run's own sized by the output caps (``sandbox/outfs.py``).
  The network namespace has ``lo`` only.
* Identity: as root, the worker drops to host uid/gid 65534 (``setpriv``) before bwrap,
  so sandboxed processes are ``nobody`` on the host too, as with Docker. Because bwrap
  then resolves bind sources as ``nobody``, the rootfs and the run's directories are first
  bound, as root, into a stage tmpfs in a private mount namespace (``unshare --mount``):
  the real paths may sit under 0700 directories. Not root: bwrap runs as the calling user.
* Syscalls: a small seccomp denylist (below) built here, close to the dangerous part of
  Docker's default profile: keyctl, bpf, perf_event_open, userfaultfd, io_uring, ptrace,
  process_vm_*, mount/namespace calls, module/kexec calls, non-x86_64 ABIs, and
  AF_VSOCK/AF_ALG sockets. It is not Docker's full allowlist.
* Memory, pids, CPU: a per-run cgroup (v1 ``memory``/``pids``/``cpu`` or v2), created
  when the cgroup tree is writable (root). Memory includes tmpfs pages; memsw is set equal
  (no swap). OOM is read from the cgroup's ``oom_kill`` counter. Without a writable cgroup
  the fallback is RLIMIT_NPROC (per host uid: shared by every sandbox of that uid) and
  RLIMIT_DATA (per process, so children multiply it); never RLIMIT_AS, which breaks CUDA.
* nofile, core and fsize: rlimits (``prlimit``), as Docker's ulimits.
* Wall clock: enforced by the worker (SIGKILL to the process group, then every pid left
  in the run's cgroup). When bwrap's PID 1 dies the kernel kills the whole PID namespace,
  so double-forked survivors go too.
* GPU: not supported here (``spec.gpu`` raises): bwrap has no device-cgroup rule.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sandbox.base import (
    DEFAULT_DEPLOYMENT,
    CappedStream,
    InfrastructureError,
    Limits,
    RunResult,
    RunSpec,
)
from sandbox.hostside import (
    FILE_SIZE_CAP_BYTES,
    SANDBOX_UID,
    OutputWatcher,
    discard_outputs,
    finish_outputs,
    prepare_host_paths,
)
from sandbox.outfs import OutFs, capped_out

STAGE_ROOT = Path("/run/katakana-bwrap")
# Top-level rootfs directories bound read-only; everything else is a fresh mount or absent.
ROOTFS_DIRS = ("usr", "etc", "var", "opt")
IMAGE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
KILL_SETTLE_SECONDS = 5.0

# x86_64 syscall numbers refused with EPERM (Docker's default profile refuses these too).
DENIED_SYSCALLS = {
    "ptrace": 101, "acct": 163, "mount": 165, "umount2": 166, "swapon": 167,
    "swapoff": 168, "reboot": 169, "pivot_root": 155, "init_module": 175,
    "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "finit_module": 313, "kexec_file_load": 320, "bpf": 321,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433,
}  # fmt: skip
SOCKET_SYSCALL = 41
DENIED_SOCKET_FAMILIES = (38, 40)  # AF_ALG, AF_VSOCK
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
EPERM, EAFNOSUPPORT = 1, 97


def seccomp_program() -> bytes:
    """Classic BPF for seccomp: deny-listed syscalls → EPERM, everything else allowed."""
    ld_abs, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, errno = 0x7FFF0000, 0x00050000

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("<HBBI", code, jt, jf, k)

    prog = [
        op(ld_abs, 4),  # seccomp_data.arch
        op(jeq, AUDIT_ARCH_X86_64, 1, 0),
        op(ret, errno | EPERM),
        op(ld_abs, 0),  # seccomp_data.nr
        op(jge, X32_SYSCALL_BIT, 0, 1),
        op(ret, errno | EPERM),
    ]
    for number in sorted(DENIED_SYSCALLS.values()):
        prog += [op(jeq, number, 0, 1), op(ret, errno | EPERM)]
    prog += [
        op(jeq, SOCKET_SYSCALL, 0, 2 * len(DENIED_SOCKET_FAMILIES) + 2),
        op(ld_abs, 16),  # low 32 bits of args[0]: the address family
    ]
    for family in DENIED_SOCKET_FAMILIES:
        prog += [op(jeq, family, 0, 1), op(ret, errno | EAFNOSUPPORT)]
    prog += [op(ret, allow), op(ret, allow)]
    return b"".join(prog)


def rootfs_digest(rootfs: Path) -> str:
    """The recipe content hash written at build time (``rootfs:<hash>``)."""
    versions = rootfs / "etc" / "katakana-sandbox" / "versions.json"
    try:
        return "rootfs:" + json.loads(versions.read_text())["content_hash"]
    except (OSError, ValueError, KeyError) as exc:
        raise InfrastructureError(f"sandbox rootfs {rootfs} is missing or incomplete") from exc


class BwrapBackend:
    name = "bwrap"
    python = "python3"

    def __init__(
        self, rootfs: Path, bwrap: str = "bwrap", deployment: str = DEFAULT_DEPLOYMENT
    ) -> None:
        self.rootfs = Path(rootfs)
        # Runs are recorded under OWNERS/<deployment>/<name>: reap touches only its own.
        self.deployment = deployment
        self._bwrap = shutil.which(bwrap) or bwrap
        self._as_root = os.geteuid() == 0
        self._live: dict[str, subprocess.Popen[bytes]] = {}

    def image_digest(self, image: str) -> str:
        return rootfs_digest(self.rootfs)

    def run(self, spec: RunSpec) -> RunResult:
        if spec.gpu is not None:
            raise InfrastructureError("the bwrap backend cannot give a run a GPU")
        self.kill(spec.name)
        digest = self.image_digest(spec.image)
        prepare_host_paths(spec)
        with capped_out(spec.out_dir, spec.limits) as outfs:
            # The run writes to the capped tmpfs; the outputs reach out_dir after.
            result = self._run(dataclasses.replace(spec, out_dir=outfs.path), digest, outfs)
            finish_outputs(result, outfs, spec)
        return result

    def _run(self, spec: RunSpec, digest: str, outfs: OutFs) -> RunResult:
        with (
            _owned(self.deployment, spec.name),
            RunCgroup.create(spec.name, spec.limits) as cgroup,
            _seccomp_fd() as seccomp_fd,
        ):
            status_read, status_write = os.pipe()
            try:
                argv = self._argv(spec, cgroup, seccomp_fd, status_write)
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=(seccomp_fd, status_write),
                    start_new_session=True,
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                )
            except OSError as exc:
                os.close(status_read)
                raise InfrastructureError(f"cannot start bwrap: {exc}") from exc
            finally:
                os.close(status_write)
            self._live[spec.name] = proc
            try:
                return self._supervise(proc, spec, cgroup, status_read, digest, outfs)
            finally:
                self._live.pop(spec.name, None)
                _kill_tree(proc, cgroup)

    def _supervise(
        self,
        proc: subprocess.Popen[bytes],
        spec: RunSpec,
        cgroup: RunCgroup,
        status_read: int,
        digest: str,
        outfs: OutFs,
    ) -> RunResult:
        cap = spec.limits.stream_cap_bytes
        out, err = CappedStream(cap), CappedStream(cap)
        readers = [
            threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
            threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
        ]
        for reader in readers:
            reader.start()
        started = time.monotonic()
        timed_out = False
        # The same /out cap as Docker's: the run is killed as soon as /out passes it.
        watcher = OutputWatcher(
            spec.out_dir,
            max_bytes=spec.limits.out_max_bytes,
            max_files=spec.limits.out_max_files,
            on_exceeded=lambda: _kill_tree(proc, cgroup),
            fs=outfs,
        )
        watcher.start()
        try:
            proc.wait(timeout=spec.limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_tree(proc, cgroup)
            proc.wait()
        wall = time.monotonic() - started
        exceeded = watcher.stop()
        if exceeded:
            discard_outputs(spec.out_dir)
            timed_out = False
        for reader in readers:
            reader.join(KILL_SETTLE_SECONDS)
        status = _read_status(status_read)
        if "child-pid" not in status and not timed_out:
            detail = err.value().decode(errors="replace")[-2000:]
            raise InfrastructureError(f"bwrap failed before the command started: {detail}")
        exit_code = status.get("exit-code", proc.returncode)
        return RunResult(
            exit_code=None if timed_out else exit_code,
            timed_out=timed_out,
            output_exceeded=exceeded,
            oom_killed=cgroup.oom_killed(),
            stdout=out.value(),
            stderr=err.value(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            wall_seconds=wall,
            backend=self.name,
            image=spec.image,
            image_digest=digest,
        )

    def _argv(self, spec: RunSpec, cgroup: RunCgroup, seccomp_fd: int, status_fd: int) -> list[str]:
        limits = spec.limits
        if self._as_root:
            stage = STAGE_ROOT / "stage"
            root_src, out_src = stage / "root", stage / "out"
            mount_srcs = [stage / f"m{i}" for i in range(len(spec.mounts))]
        else:
            root_src, out_src = self.rootfs, spec.out_dir
            mount_srcs = [Path(m.host) for m in spec.mounts]
        bwrap = [
            self._bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
            "--die-with-parent", "--new-session", "--hostname", "sandbox",
            "--seccomp", str(seccomp_fd), "--json-status-fd", str(status_fd),
        ]  # fmt: skip
        for name in ROOTFS_DIRS:
            if (self.rootfs / name).is_dir():
                bwrap += ["--ro-bind", str(root_src / name), f"/{name}"]
        for entry in sorted(self.rootfs.iterdir()):
            if entry.is_symlink():  # merged /usr: /bin -> usr/bin and friends
                bwrap += ["--symlink", os.readlink(entry), f"/{entry.name}"]
        bwrap += [
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(limits.tmpfs_mb << 20), "--tmpfs", "/tmp",
            "--size", str(limits.shm_mb << 20), "--tmpfs", "/dev/shm",
        ]  # fmt: skip
        for mount, src in zip(spec.mounts, mount_srcs, strict=True):
            bwrap += ["--ro-bind" if mount.read_only else "--bind", str(src), mount.target]
        bwrap += ["--bind", str(out_src), "/out", "--remount-ro", "/", "--clearenv"]
        for key, value in {**IMAGE_ENV, **spec.env, "HOME": "/tmp"}.items():
            bwrap += ["--setenv", key, value]
        bwrap += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--chdir", spec.workdir]
        bwrap += ["--", *spec.command]
        rlimits = [
            "prlimit",
            f"--nofile={limits.nofile}",
            "--core=0",
            f"--fsize={FILE_SIZE_CAP_BYTES}",
        ]
        if not cgroup.enforced:
            rlimits += [f"--nproc={limits.pids}", f"--data={limits.memory_mb << 20}"]
        if not self._as_root:
            return [*rlimits, "--", *bwrap]
        drop = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                "--clear-groups", "--no-new-privs", "--"]  # fmt: skip
        script = (
            self._stage_script(spec, cgroup) + "exec " + shlex.join([*rlimits, "--", *drop, *bwrap])
        )
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", script]

    def _stage_script(self, spec: RunSpec, cgroup: RunCgroup) -> str:
        """Shell run as root in a private mount ns: join the cgroup, bind the sources."""
        STAGE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        stage = STAGE_ROOT / "stage"
        lines = [f"echo $$ > {shlex.quote(str(p))}" for p in cgroup.procs_files()]
        lines += [
            f"mkdir -p {stage}",
            f"mount -t tmpfs -o mode=0755,size=64k katakana-stage {stage}",
        ]
        sources = [(self.rootfs, stage / "root"), (spec.out_dir, stage / "out")]
        sources += [(Path(m.host), stage / f"m{i}") for i, m in enumerate(spec.mounts)]
        for src, dst in sources:
            make = "mkdir" if src.is_dir() else "touch"
            lines.append(f"{make} {shlex.quote(str(dst))}")
            lines.append(f"mount --bind {shlex.quote(str(src))} {shlex.quote(str(dst))}")
        return "\n".join(lines) + "\n"

    def kill(self, name: str) -> None:
        proc = self._live.get(name)
        if proc is not None:
            _kill_tree(proc, None)
        RunCgroup.kill_leftover(name)

    def reap(self, *, older_than_seconds: float) -> list[str]:
        """Kill this deployment's runs started at least ``older_than_seconds`` ago.

        A run's marker (``OWNERS/<deployment>/<name>``, made before its cgroup) says whose
        it is and, by its mtime, when it started; another deployment's are never touched.
        """
        reaped = []
        for marker in self._markers():
            with suppress(OSError):
                if time.time() - marker.stat().st_mtime >= older_than_seconds:
                    RunCgroup.kill_leftover(marker.name)
                    marker.unlink()
                    reaped.append(marker.name)
        return reaped

    def list_runs(self) -> list[str]:
        return [marker.name for marker in self._markers()]

    def _markers(self) -> list[Path]:
        """This deployment's run markers (``OWNERS/<deployment>/<name>``), by name."""
        owners = OWNERS / self.deployment
        if not SAFE_NAME.match(self.deployment) or not owners.is_dir():
            return []
        return sorted(owners.iterdir())

    def why_killed(self, name: str, *, since: float) -> str | None:
        return None  # no engine: only this worker or the learner's code can kill a run


OWNERS = STAGE_ROOT / "runs"


@contextmanager
def _owned(deployment: str, name: str) -> Iterator[None]:
    if not SAFE_NAME.match(deployment):
        raise InfrastructureError(f"unsafe deployment name {deployment!r}")
    marker = OWNERS / deployment / name
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            marker.unlink()


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: RunCgroup | None) -> None:
    # bwrap's own pid-1 dies with its parent; the PID namespace takes the rest along.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill_all()


@contextmanager
def _seccomp_fd() -> Iterator[int]:
    fd = os.memfd_create("katakana-seccomp", 0)
    try:
        os.write(fd, seccomp_program())
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


def _read_status(fd: int) -> dict[str, int]:
    """bwrap's --json-status-fd: ``{"child-pid": N}`` then ``{"exit-code": N}``."""
    with os.fdopen(fd, "rb") as stream:
        raw = stream.read(64 * 1024)
    status: dict[str, int] = {}
    decoder = json.JSONDecoder()
    text, index = raw.decode(errors="replace"), 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        try:
            item, index = decoder.raw_decode(text, index)
        except ValueError:
            break
        if isinstance(item, dict):
            status.update({k: v for k, v in item.items() if isinstance(v, int)})
    return status


def _drain(stream: object, sink: CappedStream) -> None:
    read = getattr(stream, "read1", None)
    if read is None:
        return
    while chunk := read(65536):
        sink.feed(chunk)


CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "katakana"
V1_CONTROLLERS = ("memory", "pids", "cpu")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RunCgroup:
    """A per-run cgroup (v1 or v2) holding memory, pids and CPU limits; a no-op if denied.

    cgroup v1 (this development host) has one directory per controller; v2 one directory.
    """

    def __init__(self, dirs: list[Path], v2: bool) -> None:
        self.dirs, self.v2 = dirs, v2
        self.enforced = bool(dirs)

    @classmethod
    @contextmanager
    def create(cls, name: str, limits: Limits) -> Iterator[RunCgroup]:
        if not SAFE_NAME.match(name):
            raise InfrastructureError(f"unsafe sandbox name {name!r}")
        cgroup = cls._make(name, limits)
        try:
            yield cgroup
        finally:
            cgroup.kill_all()
            cgroup.remove()

    @classmethod
    def _make(cls, name: str, limits: Limits) -> RunCgroup:
        v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
        memory = str(limits.memory_mb << 20)
        try:
            if v2:
                parent = CGROUP_ROOT / CGROUP_PARENT
                parent.mkdir(exist_ok=True)
                for level in (CGROUP_ROOT, parent):
                    (level / "cgroup.subtree_control").write_text("+memory +pids +cpu")
                run = parent / name
                run.mkdir()
                cgroup = cls([run], v2=True)
                _write(run / "memory.max", memory)
                _write(run / "memory.swap.max", "0", optional=True)
                _write(run / "pids.max", str(limits.pids))
                _write(run / "cpu.max", f"{int(limits.cpus * 100000)} 100000")
                return cgroup
            dirs = [CGROUP_ROOT / ctrl / CGROUP_PARENT / name for ctrl in V1_CONTROLLERS]
            for path in dirs:
                path.mkdir(parents=True)
            cgroup = cls(dirs, v2=False)
            memory_dir, pids_dir, cpu_dir = dirs
            _write(memory_dir / "memory.limit_in_bytes", memory)
            _write(memory_dir / "memory.memsw.limit_in_bytes", memory, optional=True)
            _write(pids_dir / "pids.max", str(limits.pids))
            _write(cpu_dir / "cpu.cfs_period_us", "100000")
            _write(cpu_dir / "cpu.cfs_quota_us", str(int(limits.cpus * 100000)))
            return cgroup
        except OSError:
            # Not root, or a read-only/undelegated cgroup tree: fall back to rlimits.
            for path in cls._paths(name):
                with suppress(OSError):
                    path.rmdir()
            return cls([], v2=v2)

    @staticmethod
    def _paths(name: str) -> list[Path]:
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            return [CGROUP_ROOT / CGROUP_PARENT / name]
        return [CGROUP_ROOT / ctrl / CGROUP_PARENT / name for ctrl in V1_CONTROLLERS]

    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.dirs]

    def _pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files():
            with suppress(OSError):
                found |= {int(line) for line in procs.read_text().split()}
        return found

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup, again until none is left (fork races)."""
        if not self.enforced:
            return
        if self.v2:
            _write(self.dirs[0] / "cgroup.kill", "1", optional=True)
        deadline = time.monotonic() + KILL_SETTLE_SECONDS
        while (pids := self._pids()) and time.monotonic() < deadline:
            for pid in pids:
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def oom_killed(self) -> bool:
        if not self.enforced:
            return False
        events = self.dirs[0] / ("memory.events" if self.v2 else "memory.oom_control")
        with suppress(OSError):
            for line in events.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value) > 0
        return False

    def remove(self) -> None:
        for path in self.dirs:
            for _ in range(50):  # rmdir is EBUSY until the last killed task is gone
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)

    @classmethod
    def kill_leftover(cls, name: str) -> None:
        if not SAFE_NAME.match(name):
            return
        dirs = [path for path in cls._paths(name) if path.is_dir()]
        if dirs:
            leftover = cls(dirs, v2=(CGROUP_ROOT / "cgroup.controllers").exists())
            leftover.kill_all()
            leftover.remove()


def _write(path: Path, value: str, optional: bool = False) -> None:
    try:
        path.write_text(value)
    except OSError:
        if not optional:
            raise
