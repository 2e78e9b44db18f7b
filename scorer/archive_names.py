"""Names inside a submission zip: decoding them as the learner's machine wrote them, and
recognising the junk that operating systems and editors add.

Part of the archive intake (``scorer/archive.py``), kept apart because it is pure string
work with no file system access: what a name *is* comes before whether it is *safe*.
"""

from __future__ import annotations

import re
import struct
import unicodedata
import zipfile
import zlib

_MASK_UTF8_NAME = 1 << 11  # general-purpose flag bit 11: the name is UTF-8
_UNICODE_PATH_EXTRA = 0x7075  # Info-ZIP's "Unicode Path" extra field
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_JUNK_DIRS = frozenset({"__MACOSX", ".ipynb_checkpoints", "__pycache__"})
_JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def decode_entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's real name, NFC-normalised.

    Without the UTF-8 flag zipfile decodes names as cp437, but Japanese Windows writes
    cp932 and many unix tools write unflagged UTF-8. So we recover the raw bytes and try,
    in order: Info-ZIP's Unicode Path field, UTF-8, cp932, and cp437 as a last resort.
    Backslash checks must run after this: the second byte of ソ in cp932 is 0x5C.
    NFC because macOS stores decomposed names (シ + ゛) that learners' code spells composed.
    """
    if info.flag_bits & _MASK_UTF8_NAME:
        name = info.orig_filename
    else:
        raw = info.orig_filename.encode("cp437")
        name = _unicode_path_field(info.extra, raw) or _decode_legacy(raw)
    return unicodedata.normalize("NFC", name)


def _unicode_path_field(extra: bytes, raw: bytes) -> str | None:
    position = 0
    while position + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, position)
        data = extra[position + 4 : position + 4 + size]
        position += 4 + size
        # Only trust it while it still describes this name (CRC of the raw name).
        if (
            tag == _UNICODE_PATH_EXTRA
            and len(data) > 5
            and data[0] == 1
            and struct.unpack_from("<L", data, 1)[0] == zlib.crc32(raw)
        ):
            try:
                return data[5:].decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def _decode_legacy(raw: bytes) -> str:
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("cp437")


def has_control_character(name: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in name)


def is_junk(parts: tuple[str, ...], is_dir: bool) -> bool:
    """OS and editor leftovers the course's learners routinely zip up by accident."""
    if any(part in _JUNK_DIRS for part in parts):
        return True
    last = parts[-1]
    return not is_dir and (last in _JUNK_FILES or last.endswith(".pyc") or last.startswith("._"))
