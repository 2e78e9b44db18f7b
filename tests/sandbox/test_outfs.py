"""sandbox/outfs.py: the kernel cap on /out, and what a worker that cannot mount does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import outfs
from sandbox.base import InfrastructureError, Limits

LIMITS = Limits(out_max_bytes=4 << 20, out_max_files=10)


class _NoMount:
    # A worker in a container without CAP_SYS_ADMIN: mount(2) fails with EPERM.
    def mount(self, *args: object) -> int:
        return -1

    def __getattr__(self, name: str) -> object:
        return getattr(outfs._libc, name)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_the_tmpfs_refuses_writes_past_the_cap_and_counts_unlinked_files(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    fs = outfs.OutFs.mount(tmp_path / "out", LIMITS)
    try:
        assert fs.private and outfs.mounts_under(tmp_path) == [tmp_path / "out"]
        with open(tmp_path / "out" / "hidden", "wb") as hidden:
            os.unlink(tmp_path / "out" / "hidden")
            with pytest.raises(OSError, match="No space left"):
                for _ in range(100):
                    hidden.write(b"x" * (1 << 20))
                    hidden.flush()
            used = fs.used_bytes()
            assert used is not None and used > LIMITS.out_max_bytes  # seen though unlinked
            assert used <= LIMITS.out_max_bytes + outfs.SLACK_BYTES
        with pytest.raises(OSError):  # the inode cap too
            for index in range(100):
                (tmp_path / "out" / f"f{index}").touch()
    finally:
        assert outfs.release_under(tmp_path) == [tmp_path / "out"]
    assert outfs.mounts_under(tmp_path) == []


def test_without_mount_rights_it_refuses_unless_the_dir_is_on_a_small_fixed_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outfs, "_libc", _NoMount())
    monkeypatch.delenv(outfs.SHARED_FS_ENV, raising=False)
    with pytest.raises(InfrastructureError, match="cannot cap /out"):
        outfs.OutFs.mount(tmp_path, LIMITS)
    too_small = outfs.filesystem_bytes(tmp_path) // (2 << 20)  # MB, half the real size
    monkeypatch.setenv(outfs.SHARED_FS_ENV, str(too_small))
    with pytest.raises(InfrastructureError):
        outfs.OutFs.mount(tmp_path, LIMITS)
    monkeypatch.setenv(outfs.SHARED_FS_ENV, str((outfs.filesystem_bytes(tmp_path) >> 20) + 1))
    shared = outfs.OutFs.mount(tmp_path, LIMITS)
    assert not shared.private and shared.used_bytes() is None
