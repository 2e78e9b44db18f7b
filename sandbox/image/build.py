"""Build the CPU sandbox image offline: debootstrap → wheels → rootfs dir → ``docker import``.

No registry is needed: Debian packages come from the apt mirror through ``debootstrap``,
Python wheels are downloaded on the host (``pip download`` for cp311 manylinux; the CPU
PyTorch wheel comes from the local find-links directory) and installed inside the chroot
with ``--no-index``. The result is kept as a plain directory,
``$KATAKANA_CACHE/rootfs-<hash>/`` (default ``~/.cache/katakana``), which the bubblewrap
backend uses as its root, and is imported into Docker as ``katakana-sandbox:cpu-<hash>``
(also tagged ``katakana-sandbox:cpu``). ``<hash>`` covers the recipe files and the
requirements, so a rebuild is skipped when both outputs for that hash already exist.

Run as root (debootstrap and chroot need it): ``python -m sandbox.image build``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IMAGE_REPO = "katakana-sandbox"
# The image's entrypoint (confine.py): a seccomp filter stacked on the engine's profile,
# then exec of the command, so every container of the image runs under it.
CONFINE_SCRIPT = "/usr/local/lib/katakana/confine.py"
CONFINE_ENTRYPOINT = ("/usr/bin/python3", "-I", CONFINE_SCRIPT)
CPU_TAG = f"{IMAGE_REPO}:cpu"
SUITE = "bookworm"
PYTHON_VERSION = "3.11"
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-cpu.txt"
# Files whose bytes define the image: change one and the hash (and the image) changes.
RECIPE_FILES = ("build.py", "requirements-cpu.txt", "confine.py")
# Only what Python needs; tini is not installed because Docker runs with --init and
# bubblewrap is its own PID-1 reaper.
# python3-seccomp: libseccomp's bindings, for the entrypoint's filter (confine.py).
DEB_PACKAGES = ("python3", "libgomp1", "python3-seccomp")
# Wheels for glibc <= 2.36 (bookworm) that pip may pick, newest first.
MANYLINUX_PLATFORMS = tuple(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)) + (
    "manylinux2014_x86_64",
)
# Written into the image so a run can report exactly which library versions scored it.
VERSIONS_PATH = "etc/katakana-sandbox/versions.json"
# Directories the sandbox mounts over; created so both backends find a mount point.
MOUNT_POINTS = ("work", "harness", "out")
# Big and never needed at run time: docs, apt state, C headers, the libraries' own test suites.
STRIP_PATHS = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "var/lib/apt/lists",
    "var/log",
    "usr/local/lib/python3.11/dist-packages/torch/include",
    "usr/local/lib/python3.11/dist-packages/tensorflow/include",
)
STRIP_TEST_DIRS_UNDER = ("numpy", "scipy", "pandas", "sklearn", "matplotlib")
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"


@dataclass(frozen=True)
class BuildResult:
    content_hash: str
    tag: str
    rootfs: Path
    skipped: bool
    seconds: float


def cache_dir() -> Path:
    return Path(os.environ.get("KATAKANA_CACHE", Path.home() / ".cache" / "katakana"))


def content_hash() -> str:
    digest = hashlib.sha256()
    for name in RECIPE_FILES:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_tag(hash_: str | None = None) -> str:
    return f"{IMAGE_REPO}:cpu-{hash_ or content_hash()}"


def rootfs_path(hash_: str | None = None) -> Path:
    return cache_dir() / f"rootfs-{hash_ or content_hash()}"


def rootfs_is_complete(rootfs: Path) -> bool:
    return (rootfs / VERSIONS_PATH).is_file()


def docker_image_exists(tag: str) -> bool:
    probe = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return probe.returncode == 0


def prune(*, keep: int = 1, repo: str = IMAGE_REPO) -> list[str]:
    """Delete the rootfs folders and image tags of other recipe hashes; return what went.

    Every recipe change leaves a 1.4 GB rootfs and a 1.3 GB image behind, which would
    fill a small disk within a few upgrades. The current recipe's are never touched and
    the ``keep`` newest others are spared, for runs still in flight on a just-replaced
    image. Docker refuses to remove an image a container still uses; that tag stays.
    """
    current = content_hash()
    removed: list[str] = []
    folders = [
        path
        for path in cache_dir().glob("rootfs-*")
        if path.is_dir() and path.name != f"rootfs-{current}" and not path.name.endswith(".partial")
    ]
    folders.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    for path in folders[keep:]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    if shutil.which("docker") is None:
        return removed
    listing = subprocess.run(
        ["docker", "images", repo, "--format", "{{.Tag}}\t{{.CreatedAt}}"],
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        return removed
    tags = []
    for line in listing.stdout.splitlines():
        tag, _, created = line.partition("\t")
        if tag.startswith("cpu-") and tag != f"cpu-{current}":
            tags.append((created, tag))
    for _created, tag in sorted(tags, reverse=True)[keep:]:
        done = subprocess.run(["docker", "rmi", f"{repo}:{tag}"], capture_output=True)
        if done.returncode == 0:
            removed.append(f"{repo}:{tag}")
    return removed


def build(*, force: bool = False, with_docker: bool = True) -> BuildResult:
    started = time.monotonic()
    hash_ = content_hash()
    tag, rootfs = image_tag(hash_), rootfs_path(hash_)
    have_rootfs = rootfs_is_complete(rootfs) and not force
    have_image = (not with_docker) or (docker_image_exists(tag) and not force)
    if have_rootfs and have_image:
        _log(f"up to date: {tag} and {rootfs}")
        return BuildResult(hash_, tag, rootfs, True, time.monotonic() - started)
    if not have_rootfs:
        _build_rootfs(rootfs, hash_)
    if with_docker:
        _import_into_docker(rootfs, tag)
    return BuildResult(hash_, tag, rootfs, False, time.monotonic() - started)


def _build_rootfs(dest: Path, hash_: str) -> None:
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    mirror = os.environ.get("KATAKANA_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    _log(f"debootstrap {SUITE} into {partial}")
    _run(
        [
            shutil.which("debootstrap") or "/usr/sbin/debootstrap",
            "--variant=minbase",
            f"--include={','.join(DEB_PACKAGES)}",
            SUITE,
            str(partial),
            mirror,
        ]
    )
    wheels = _download_wheels()
    staged = partial / "tmp" / "wheels"
    _stage_wheels(wheels, staged)
    pip_wheel = next(staged.glob("pip-*.whl"))
    _log("installing wheels inside the chroot (offline)")
    _chroot(
        partial,
        [
            "/usr/bin/python3",
            f"/tmp/wheels/{pip_wheel.name}/pip",
            "install",
            "--no-index",
            "--find-links=/tmp/wheels",
            "--no-cache-dir",
            "--break-system-packages",
            "--root-user-action=ignore",
            "--disable-pip-version-check",
            "-r",
            "/tmp/wheels/requirements.txt",
        ],
    )
    shutil.rmtree(staged)
    _write_versions(partial, hash_)
    _strip(partial)
    confine = partial / CONFINE_SCRIPT.lstrip("/")
    confine.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "confine.py", confine)
    confine.chmod(0o644)
    for name in MOUNT_POINTS:
        (partial / name).mkdir(mode=0o755, exist_ok=True)
    # /tmp is a tmpfs in every run; the image's own copy stays empty and sticky.
    (partial / "tmp").chmod(0o1777)
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)


def _download_wheels() -> Path:
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    platform_args = [f"--platform={p}" for p in MANYLINUX_PLATFORMS]
    _log(f"pip download into {wheels}")
    common = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        "--abi=cp311",
        *platform_args,
        f"--dest={wheels}",
        "--disable-pip-version-check",
    ]
    _run([*common, "-r", str(REQUIREMENTS)])
    _run([*common, "pip"])
    return wheels


def _stage_wheels(wheels: Path, staged: Path) -> None:
    staged.mkdir(parents=True)
    for wheel in wheels.glob("*.whl"):
        try:
            os.link(wheel, staged / wheel.name)  # same filesystem: no 200 MB copy
        except OSError:
            shutil.copy2(wheel, staged / wheel.name)
    shutil.copy2(REQUIREMENTS, staged / "requirements.txt")


def _write_versions(root: Path, hash_: str) -> None:
    script = (
        "import json, platform, importlib.metadata as m;"
        "print(json.dumps({'python': platform.python_version(),"
        "'packages': {d.metadata['Name'].lower(): d.version for d in m.distributions()}}))"
    )
    found = json.loads(_chroot(root, ["/usr/bin/python3", "-c", script]))
    debian_version = (root / "etc" / "debian_version").read_text().strip()
    record = {"content_hash": hash_, "debian": debian_version, **found}
    target = root / VERSIONS_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _strip(root: Path) -> None:
    for rel in STRIP_PATHS:
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
            path.mkdir()
    site = root / SITE_PACKAGES
    for package in STRIP_TEST_DIRS_UNDER:
        for tests in sorted((site / package).rglob("tests"), reverse=True):
            if tests.is_dir():
                shutil.rmtree(tests, ignore_errors=True)


def _import_into_docker(rootfs: Path, tag: str) -> None:
    _log(f"docker import {rootfs} as {tag}")
    changes = [
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        "ENV LANG=C.UTF-8",
        "USER 65534:65534",
        "WORKDIR /tmp",
        f"ENTRYPOINT {json.dumps(list(CONFINE_ENTRYPOINT))}",
        'CMD ["python3"]',
    ]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."], stdout=subprocess.PIPE
    )
    change_args = [arg for change in changes for arg in ("--change", change)]
    try:
        _run(["docker", "import", *change_args, "-", tag], stdin=tar.stdout)
    finally:
        if tar.stdout:
            tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of the rootfs failed")
    _run(["docker", "tag", tag, CPU_TAG])


def _chroot(root: Path, argv: list[str]) -> str:
    # A clean environment: the host's PIP_* variables (find-links, index) must not leak in.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"  # lookup uses the host PATH
    done = subprocess.run(
        [chroot, str(root), *argv], env=env, check=True, stdout=subprocess.PIPE, text=True
    )
    return done.stdout


def _run(argv: list[str], **kwargs: object) -> None:
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def _log(message: str) -> None:
    print(f"[sandbox-image] {message}", file=sys.stderr, flush=True)
