"""Safe, single-pass extraction of a learner's submission zip on the host.

This runs before any sandbox, on untrusted bytes, so it trusts nothing in the archive:
every name is decoded (cp932 for Windows zips without the UTF-8 flag), checked and
normalised before anything is written; links, special files, encrypted and overlapping
entries are refused; sizes are counted on the bytes actually written, never taken from
headers, and writing stops the moment a cap is passed. Files are created with
``O_EXCL | O_NOFOLLOW`` relative to directory descriptors, so nothing is ever written
through a link. Junk (``__MACOSX``, ``.DS_Store``, caches) is dropped, and when the
learner zipped one folder, as the course asks, ``root`` is that folder.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from scorer.archive_names import DRIVE_LETTER, decode_entry_name, has_control_character, is_junk
from scorer.errors import ErrorClass, ScoringError, gettext_noop

MB = 1 << 20
_CHUNK = 1 << 16
_MASK_ENCRYPTED = 1 << 0
_MASK_STRONG_ENCRYPTION = 1 << 6
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
# The empty archive starts with its end record; both are zips.
_ZIP_MAGICS = (_LOCAL_MAGIC, b"PK\x05\x06")
# Learners' zips are deflate or stored. CPython bounds a deflate read by the size asked
# for, but inflates a bzip2 or LZMA chunk whole (a 684-byte entry became 1 GB in one
# read, issue 13), so every other method is refused from the directory, before any byte
# is decompressed: no decompression can then outrun the byte budget.
_ACCEPTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_METHOD_NAMES = {
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
    9: "Deflate64",
    93: "Zstandard",
}
# A central directory record is at least 46 bytes; allowing 1 KiB per entry bounds the
# memory zipfile spends parsing a directory whose entry count lies.
_CD_BYTES_PER_ENTRY = 1024


@dataclass(frozen=True)
class ArchiveLimits:
    max_zip_bytes: int = 200 * MB
    # Counted on bytes written, across all extracted files.
    max_total_bytes: int = 1024 * MB
    max_entries: int = 10_000
    max_file_bytes: int = 500 * MB
    # Path components, folders and file name together.
    max_depth: int = 20
    # Written bytes per compressed byte for one entry. Deflate tops out near 1032:1, so
    # this catches bombs built from runs of zeros while real model files (floats
    # compress ~1.1:1) never come close; it only applies past ratio_floor_bytes, so
    # small, highly repetitive text files are never refused.
    max_ratio: float = 500.0
    ratio_floor_bytes: int = 1 * MB


@dataclass(frozen=True)
class Extracted:
    # dest, or dest/<folder> when the archive holds exactly one top-level folder.
    root: Path
    # Regular files extracted, POSIX paths relative to root, sorted.
    files: list[str]
    # Junk entries dropped (relative to the archive top, folders end with "/").
    stripped: list[str]
    top_folder: str | None


# code -> English msgid. Several rejection reasons share a code (unsafe paths) but each
# has its own msgid so the translated text says exactly what was wrong.
MESSAGES: dict[str, str] = {
    "archive_not_zip": gettext_noop(
        "The uploaded file is not a zip archive (it looks like a %(kind)s file). "
        "Zip your folder with 'zip -r' or your system's 'Compress' command."
    ),
    "archive_not_zip_unknown": gettext_noop(
        "The uploaded file is not a zip archive. Zip your folder with 'zip -r' or "
        "your system's 'Compress' command."
    ),
    "archive_corrupt": gettext_noop(
        "The zip archive is damaged and cannot be read. Create it again and upload the new file."
    ),
    "archive_corrupt_entry": gettext_noop(
        "%(entry)s in the zip is damaged and cannot be read. Create the zip again and "
        "upload the new file."
    ),
    "archive_too_large": gettext_noop(
        "The zip file is %(size_mb)s MB; the limit is %(limit_mb)s MB."
    ),
    "archive_absolute_path": gettext_noop(
        "The zip contains an absolute path: %(entry)s. Zip the folder itself."
    ),
    "archive_parent_path": gettext_noop(
        "The zip contains a path that leaves its folder ('..'): %(entry)s."
    ),
    "archive_backslash_path": gettext_noop(
        "The zip contains a path with backslashes: %(entry)s. Create the zip again with "
        "a tool that writes '/' between folders (for example 7-Zip or 'zip -r')."
    ),
    "archive_drive_path": gettext_noop(
        "The zip contains a path with a drive letter: %(entry)s. Zip the folder itself."
    ),
    "archive_control_path": gettext_noop(
        "The zip contains a name with control characters: %(entry)s."
    ),
    "archive_long_name": gettext_noop("The zip contains a name longer than 255 bytes: %(entry)s."),
    "archive_link": gettext_noop(
        "The zip contains a symbolic link: %(entry)s. Replace links with the real "
        "files before zipping."
    ),
    "archive_special_file": gettext_noop(
        "The zip contains %(entry)s, which is neither a regular file nor a folder."
    ),
    "archive_duplicate_name": gettext_noop("The zip contains %(entry)s more than once."),
    "archive_path_conflict": gettext_noop(
        "The zip contains %(entry)s both as a file and as a folder."
    ),
    "archive_encrypted": gettext_noop(
        "%(entry)s in the zip is encrypted. Upload a zip without a password."
    ),
    "archive_unsupported_compression": gettext_noop(
        "%(entry)s is compressed with %(method)s, which this server does not accept. Create "
        "the zip again with the standard (deflate) method, for example with 'zip -r'."
    ),
    "archive_too_many_entries": gettext_noop(
        "The zip contains %(count)s entries; the limit is %(limit)s."
    ),
    "archive_too_deep": gettext_noop(
        "%(entry)s is nested %(depth)s levels deep; the limit is %(limit)s."
    ),
    "archive_entry_too_large": gettext_noop(
        "%(entry)s is larger than %(limit_mb)s MB once extracted."
    ),
    "archive_total_too_large": gettext_noop(
        "The zip's contents are larger than %(limit_mb)s MB once extracted (the limit "
        "was passed at %(entry)s)."
    ),
    "archive_compression_ratio": gettext_noop(
        "%(entry)s expands more than %(limit)s times when extracted, which looks like a zip bomb."
    ),
    "archive_overlapping_entries": gettext_noop(
        "The zip's entries overlap at %(entry)s, which is how zip bombs are built."
    ),
    "archive_empty": gettext_noop(
        "The zip contains no files apart from system files such as __MACOSX or .DS_Store."
    ),
}


def reject(code: str, msgid: str | None = None, detail: str = "", **params: Any) -> ScoringError:
    """Build the INVALID_ARCHIVE error for ``code`` (msgid defaults to the code's)."""
    return ScoringError(
        error_class=ErrorClass.INVALID_ARCHIVE,
        code=code,
        message=MESSAGES[msgid or code],
        params=params,
        detail=detail,
    )


def extract_submission(
    zip_path: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()
) -> Extracted:
    """Extract ``zip_path`` into ``dest`` (absent or empty) or raise ScoringError.

    On any failure everything written under ``dest`` is removed again.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"extraction target {dest} is not empty")
    dest.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        with open(zip_path, "rb") as fp:
            _check_container(fp, limits)
            with _open_zip(fp) as zf:
                plan = _plan(zf, fp, limits)
                _write_all(zf, plan, dest, limits)
    except BaseException:
        _empty_directory(dest)
        raise
    return _summarise(dest, plan)


# --- the container: size, magic, central directory -------------------------------


def _check_container(fp: BinaryIO, limits: ArchiveLimits) -> None:
    size = os.fstat(fp.fileno()).st_size
    if size > limits.max_zip_bytes:
        raise reject("archive_too_large", size_mb=_mb(size), limit_mb=_mb(limits.max_zip_bytes))
    head = fp.read(512)
    if not head.startswith(_ZIP_MAGICS):
        kind = _sniff_format(head)
        if kind is None:
            raise reject("archive_not_zip", "archive_not_zip_unknown", kind="unknown")
        raise reject("archive_not_zip", kind=kind)
    _check_directory_size(fp, limits)


def _sniff_format(head: bytes) -> str | None:
    """Name the format of a non-zip upload, for a friendlier message."""
    if head[257:262] == b"ustar":
        return "tar"
    for magic, kind in (
        (b"\x1f\x8b", "gzip"),
        (b"Rar!\x1a\x07", "RAR"),
        (b"7z\xbc\xaf\x27\x1c", "7z"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"%PDF", "PDF"),
    ):
        if head.startswith(magic):
            return kind
    return None


def _check_directory_size(fp: BinaryIO, limits: ArchiveLimits) -> None:
    """Refuse huge central directories before zipfile parses them into memory.

    Uses zipfile's private end-record reader (stable since 3.x, present in 3.11-3.14);
    without it we fall back to counting after parsing, bounded by max_zip_bytes.
    """
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:
        return
    endrec = end_record(fp)
    if endrec is None:
        raise reject("archive_corrupt", detail="no end of central directory record")
    count, cd_size = endrec[4], endrec[5]
    if count > limits.max_entries or cd_size > limits.max_entries * _CD_BYTES_PER_ENTRY:
        raise reject("archive_too_many_entries", count=count, limit=limits.max_entries)


@contextmanager
def _open_zip(fp: BinaryIO) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, struct.error) as exc:
        raise reject("archive_corrupt", detail=repr(exc)) from exc
    with zf:
        yield zf


# --- planning: every check that needs no decompression ---------------------------


@dataclass
class _Item:
    info: zipfile.ZipInfo
    key: str  # normalised relative path, "/"-joined, no trailing slash
    is_dir: bool
    junk: bool


def _plan(zf: zipfile.ZipFile, fp: BinaryIO, limits: ArchiveLimits) -> list[_Item]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise reject("archive_too_many_entries", count=len(infos), limit=limits.max_entries)
    names = [decode_entry_name(info) for info in infos]
    _check_overlaps(fp, infos, names, zf.start_dir)
    items: list[_Item] = []
    files: set[str] = set()
    dirs: set[str] = set()
    for info, name in zip(infos, names, strict=True):
        is_dir = _check_kind(info, name)
        parts = _safe_parts(name, limits)
        if not parts:  # "./" and the like: nothing to create
            continue
        key = "/".join(parts)
        junk = is_junk(parts, is_dir)
        if not junk:
            if info.flag_bits & (_MASK_ENCRYPTED | _MASK_STRONG_ENCRYPTION):
                raise reject("archive_encrypted", entry=name)
            if not is_dir and info.compress_type not in _ACCEPTED_METHODS:
                raise reject("archive_unsupported_compression", entry=name, method=_method(info))
            _check_unique(key, is_dir, name, files, dirs)
        items.append(_Item(info, key, is_dir, junk))
    if not files:
        raise reject("archive_empty")
    return items


def _check_overlaps(
    fp: BinaryIO, infos: list[zipfile.ZipInfo], names: list[str], start_dir: int
) -> None:
    """Each entry's data must end before the next local header (or the directory).

    CPython only gained this check in 3.12/3.11.8 (gh-109858); doing it ourselves keeps
    the defence on every interpreter. Entries sharing or overlapping a local header,
    and "quoted" entries whose data swallows the next entry, are all refused.
    """
    order = sorted(range(len(infos)), key=lambda i: infos[i].header_offset)
    for position, index in enumerate(order):
        info = infos[index]
        following = order[position + 1] if position + 1 < len(order) else None
        limit = start_dir if following is None else infos[following].header_offset
        fp.seek(info.header_offset)
        raw = fp.read(_LOCAL_HEADER.size)
        if len(raw) != _LOCAL_HEADER.size or raw[:4] != _LOCAL_MAGIC:
            raise reject("archive_corrupt", "archive_corrupt_entry", entry=names[index])
        header = _LOCAL_HEADER.unpack(raw)
        data_start = info.header_offset + _LOCAL_HEADER.size + header[-2] + header[-1]
        if data_start + info.compress_size > limit:
            raise reject("archive_overlapping_entries", entry=names[index])


def _check_kind(info: zipfile.ZipInfo, name: str) -> bool:
    """Return whether the entry is a folder; refuse links and special files.

    The high 16 bits of external_attr hold a unix st_mode when the zip was made on a
    unix-like system; a type of 0 means the tool recorded permissions only.
    """
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise reject("archive_link", entry=name)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise reject("archive_special_file", entry=name)
    return name.endswith("/") or kind == stat.S_IFDIR


def _safe_parts(name: str, limits: ArchiveLimits) -> tuple[str, ...]:
    """Split a decoded entry name into safe components or refuse it (never rewrite)."""
    if has_control_character(name):
        raise reject("archive_unsafe_path", "archive_control_path", entry=ascii(name))
    if "\\" in name:
        raise reject("archive_unsafe_path", "archive_backslash_path", entry=name)
    if name.startswith("/"):
        raise reject("archive_unsafe_path", "archive_absolute_path", entry=name)
    if DRIVE_LETTER.match(name):
        raise reject("archive_unsafe_path", "archive_drive_path", entry=name)
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise reject("archive_unsafe_path", "archive_parent_path", entry=name)
    if any(len(part.encode("utf-8")) > 255 for part in parts):
        raise reject("archive_unsafe_path", "archive_long_name", entry=name)
    if len(parts) > limits.max_depth:
        raise reject("archive_too_deep", entry=name, depth=len(parts), limit=limits.max_depth)
    return parts


def _check_unique(key: str, is_dir: bool, name: str, files: set[str], dirs: set[str]) -> None:
    parents = key.split("/")[:-1]
    prefixes = ["/".join(parents[: i + 1]) for i in range(len(parents))]
    if any(prefix in files for prefix in prefixes):
        raise reject("archive_path_conflict", entry=name)
    if is_dir:
        if key in files:
            raise reject("archive_path_conflict", entry=name)
        dirs.add(key)
    else:
        if key in files:
            raise reject("archive_duplicate_name", entry=name)
        if key in dirs:
            raise reject("archive_path_conflict", entry=name)
        files.add(key)
    dirs.update(prefixes)


# --- writing: bytes are counted as they land ---------------------------------------


@dataclass
class _Budget:
    limits: ArchiveLimits
    total: int = 0


def _write_all(zf: zipfile.ZipFile, plan: list[_Item], dest: Path, limits: ArchiveLimits) -> None:
    budget = _Budget(limits)
    dest_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for item in plan:
            if item.junk:
                continue
            parts = item.key.split("/")
            if item.is_dir:
                os.close(_open_dirs(dest_fd, parts, item.key))
            else:
                parent_fd = _open_dirs(dest_fd, parts[:-1], item.key)
                try:
                    _write_file(zf, item, parent_fd, parts[-1], budget)
                finally:
                    if parent_fd != dest_fd:
                        os.close(parent_fd)
    finally:
        os.close(dest_fd)


def _open_dirs(dest_fd: int, parts: list[str], key: str) -> int:
    """Create and open ``parts`` below ``dest_fd`` without following any link."""
    fd = dest_fd
    for part in parts:
        created = True
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
        except FileExistsError:
            created = False
        try:
            child = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
        except (NotADirectoryError, OSError) as exc:
            # Only a file we wrote ourselves can sit here: the plan missed a conflict.
            raise reject("archive_path_conflict", entry=key, detail=repr(exc)) from exc
        finally:
            if fd != dest_fd:
                os.close(fd)
        if created:
            os.fchmod(child, 0o755)  # mkdir's mode is filtered by the umask
        fd = child
    return fd


def _write_file(
    zf: zipfile.ZipFile, item: _Item, parent_fd: int, filename: str, budget: _Budget
) -> None:
    name = item.key
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(filename, flags, 0o644, dir_fd=parent_fd)
    except FileExistsError as exc:
        raise reject("archive_duplicate_name", entry=name) from exc
    try:
        os.fchmod(fd, 0o644)
        written = 0
        for chunk in _read_entry(zf, item.info, name):
            written += len(chunk)
            _check_budget(item.info, name, written, budget)
            _write_fully(fd, chunk)
        budget.total += written
    finally:
        os.close(fd)
    if written != item.info.file_size:
        raise reject(
            "archive_corrupt",
            "archive_corrupt_entry",
            entry=name,
            detail=f"{written} bytes written, header says {item.info.file_size}",
        )


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Iterator[bytes]:
    """Yield decompressed chunks, mapping every decoder failure to a learner error.

    Read errors are mapped here and not around the writes, so a full host disk
    (OSError from os.write) stays an infrastructure failure.
    """
    try:
        with zf.open(info) as src:
            while chunk := src.read(_CHUNK):
                yield chunk
    except NotImplementedError as exc:
        raise reject(
            "archive_unsupported_compression", entry=name, method=_method(info), detail=repr(exc)
        ) from exc
    except RuntimeError as exc:  # zipfile: "encrypted, password required"
        raise reject("archive_encrypted", entry=name, detail=repr(exc)) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        msgid = "archive_corrupt_entry"
        code = "archive_corrupt"
        if "overlap" in str(exc).lower():  # CPython >= 3.12's own check
            code = msgid = "archive_overlapping_entries"
        raise reject(code, msgid, entry=name, detail=repr(exc)) from exc


def _check_budget(info: zipfile.ZipInfo, name: str, written: int, budget: _Budget) -> None:
    limits = budget.limits
    if written > limits.max_file_bytes:
        raise reject("archive_entry_too_large", entry=name, limit_mb=_mb(limits.max_file_bytes))
    if budget.total + written > limits.max_total_bytes:
        raise reject("archive_total_too_large", entry=name, limit_mb=_mb(limits.max_total_bytes))
    if (
        written > limits.ratio_floor_bytes
        and written > max(info.compress_size, 1) * limits.max_ratio
    ):
        raise reject("archive_compression_ratio", entry=name, limit=int(limits.max_ratio))


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- result ---------------------------------------------------------------------------


def _summarise(dest: Path, plan: list[_Item]) -> Extracted:
    kept = [item for item in plan if not item.junk]
    stripped = [item.key + ("/" if item.is_dir else "") for item in plan if item.junk]
    tops = {item.key.split("/")[0] for item in kept}
    top_folder = None
    if len(tops) == 1:
        (only,) = tops
        if any(item.key != only or item.is_dir for item in kept):
            top_folder = only
    root = dest / top_folder if top_folder else dest
    prefix = f"{top_folder}/" if top_folder else ""
    files = sorted(item.key[len(prefix) :] for item in kept if not item.is_dir)
    return Extracted(root=root, files=files, stripped=stripped, top_folder=top_folder)


def _empty_directory(dest: Path) -> None:
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _method(info: zipfile.ZipInfo) -> str:
    return _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")


def _mb(size: int) -> str:
    return f"{size / MB:.0f}" if size >= MB else f"{size / MB:.2f}"
