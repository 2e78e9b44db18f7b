"""Build real zip archives for tests, including ones no honest tool would write.

``make_zip`` uses the stdlib writer for ordinary archives. ``RawEntry`` and
``raw_zip`` write local headers, central directory and end record by hand, so a test
can set any flag, mode, name bytes or size field, point two entries at one header, or
make one entry's data swallow the next (the "quoted overlap" zip-bomb construction).
"""

from __future__ import annotations

import stat
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

UNIX = 3
FLAG_ENCRYPTED = 1 << 0
FLAG_UTF8 = 1 << 11


def make_zip(
    path: Path, files: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    """Write ``files`` (name -> content; a name ending in "/" is a folder) to ``path``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are written on purpose
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, content in files.items():
                zf.writestr(name, content)
    return path


def zip_with_mode(path: Path, name: str, content: bytes, mode: int) -> Path:
    """One entry whose unix st_mode (type bits included) is ``mode``."""
    info = zipfile.ZipInfo(name)
    info.create_system = UNIX
    info.external_attr = mode << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, content)
    return path


def symlink_zip(path: Path, name: str, target: str) -> Path:
    return zip_with_mode(path, name, target.encode(), stat.S_IFLNK | 0o777)


@dataclass
class RawEntry:
    name: bytes
    data: bytes = b""
    # STORED (0) or DEFLATED (8): the data is compressed with zlib for 8.
    method: int = zipfile.ZIP_STORED
    flags: int = 0
    external_attr: int = 0o644 << 16
    create_system: int = UNIX
    # Overrides for lying headers; None means "the truth".
    file_size: int | None = None
    compress_size: int | None = None
    crc: int | None = None
    extra: bytes = b""
    # Point the central record at another entry's local header (index), for overlaps.
    header_of: int | None = None


def _compress(entry: RawEntry) -> bytes:
    if entry.method == zipfile.ZIP_DEFLATED:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        return compressor.compress(entry.data) + compressor.flush()
    return entry.data


def _local(entry: RawEntry, payload: bytes, crc: int, csize: int, fsize: int) -> bytes:
    header = struct.pack(
        "<4s2B4HL2L2H",
        b"PK\x03\x04",
        20,
        0,
        entry.flags,
        entry.method,
        0,
        0x21,
        crc,
        csize,
        fsize,
        len(entry.name),
        len(entry.extra),
    )
    return header + entry.name + entry.extra + payload


def _central(entry: RawEntry, crc: int, csize: int, fsize: int, offset: int) -> bytes:
    record = struct.pack(
        "<4s4B4HL2L5H2L",
        b"PK\x01\x02",
        20,
        entry.create_system,
        20,
        0,
        entry.flags,
        entry.method,
        0,
        0x21,
        crc,
        csize,
        fsize,
        len(entry.name),
        len(entry.extra),
        0,
        0,
        0,
        entry.external_attr,
        offset,
    )
    return record + entry.name + entry.extra


def raw_zip(
    path: Path,
    entries: list[RawEntry],
    *,
    swallow_next: int | None = None,
    declared_count: int | None = None,
) -> Path:
    """Write ``entries`` by hand.

    ``swallow_next=i`` turns entry i into a stored entry whose data is entry i+1's
    local header and data: a valid file on its own that overlaps its neighbour.
    ``declared_count`` makes the end record lie about the number of entries.
    """
    metas: list[tuple[int, int, int]] = []
    blobs: list[bytes] = []
    for entry in entries:
        payload = _compress(entry)
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        csize = len(payload) if entry.compress_size is None else entry.compress_size
        fsize = len(entry.data) if entry.file_size is None else entry.file_size
        metas.append((crc, csize, fsize))
        blobs.append(_local(entry, payload, crc, csize, fsize))
    offsets: list[int] = []
    position = 0
    for blob in blobs:
        offsets.append(position)
        position += len(blob)
    if swallow_next is not None:
        i = swallow_next
        quoted = blobs[i + 1]
        metas[i] = (zlib.crc32(quoted), len(quoted), len(quoted))
        blobs[i] = _local(entries[i], quoted, *metas[i])
        blobs[i + 1] = b""
        offsets[i + 1] = offsets[i] + len(blobs[i]) - len(quoted)
    body = b"".join(blobs)
    central = b""
    for index, entry in enumerate(entries):
        offset = offsets[index if entry.header_of is None else entry.header_of]
        central += _central(entry, *metas[index], offset)
    count = len(entries) if declared_count is None else declared_count
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), len(body), 0)
    path.write_bytes(body + central + end)
    return path
