"""deploy/backup.sh and deploy/restore.sh against the machine's real PostgreSQL and GNU tar."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PG = "postgres://postgres@127.0.0.1:5432"

pytestmark = pytest.mark.skipif(
    shutil.which("pg_dump") is None or shutil.which("psql") is None,
    reason="needs the PostgreSQL client tools",
)


def psql(database: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", f"{PG}/{database}", "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """A source database with one table and an empty target to restore into."""
    names = (f"backup_src_{secrets.token_hex(4)}", f"backup_dst_{secrets.token_hex(4)}")
    for name in names:
        psql("postgres", f"CREATE DATABASE {name}")
    psql(names[0], "CREATE TABLE result (id int PRIMARY KEY, accuracy float)")
    psql(names[0], "INSERT INTO result VALUES (1, 0.987), (2, 0.5)")
    yield names
    for name in names:
        psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_script(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", str(DEPLOY / script), *args], env={**os.environ, **env},
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_a_full_then_a_differential_backup_restores_database_and_files(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    source_db, target_db = databases
    data = tmp_path / "srv"
    (data / "submissions" / "dl_x").mkdir(parents=True)
    (data / "testsets" / "dl_x" / "v1").mkdir(parents=True)
    (data / "submissions" / "dl_x" / "a.zip").write_bytes(b"first zip")
    (data / "testsets" / "dl_x" / "v1" / "test_data.npy").write_bytes(b"\x93NUMPY data")
    env = {
        "DATABASE_URL": f"{PG}/{source_db}",
        "KATAKANA_BACKUP_DIR": str(tmp_path / "backups"),
        "KATAKANA_SUBMISSIONS_DIR": str(data / "submissions"),
        "KATAKANA_TESTSETS_DIR": str(data / "testsets"),
    }
    run_script("backup.sh", "once", env=env)
    time.sleep(1.1)  # set names are per-second UTC stamps
    (data / "submissions" / "dl_x" / "b.zip").write_bytes(b"second zip")
    psql(source_db, "INSERT INTO result VALUES (3, 0.99)")
    run_script("backup.sh", "once", env=env)

    sets = sorted(p.name for p in (tmp_path / "backups").iterdir() if p.is_dir())
    assert [s.rsplit("-", 1)[1] for s in sets] == ["full", "diff"]
    diff = tmp_path / "backups" / sets[1]
    assert (diff / "BASE").read_text().strip() == sets[0]
    assert b"first zip" not in (diff / "submissions.tar").read_bytes()  # only what changed
    assert run_script("backup.sh", "check", env=env).returncode == 0

    restored = tmp_path / "restored"
    run_script(
        "restore.sh", str(diff),
        env={**env, "DATABASE_URL": f"{PG}/{target_db}",
             "KATAKANA_SUBMISSIONS_DIR": str(restored / "submissions"),
             "KATAKANA_TESTSETS_DIR": str(restored / "testsets")},
    )  # fmt: skip
    assert psql(target_db, "SELECT count(*) FROM result") == "3"
    assert (restored / "submissions" / "dl_x" / "a.zip").read_bytes() == b"first zip"
    assert (restored / "submissions" / "dl_x" / "b.zip").read_bytes() == b"second zip"
    assert (restored / "testsets" / "dl_x" / "v1" / "test_data.npy").exists()


def test_restore_refuses_a_set_whose_checksum_does_not_match(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    (tmp_path / "srv" / "submissions").mkdir(parents=True)
    (tmp_path / "srv" / "testsets").mkdir(parents=True)
    env = {
        "DATABASE_URL": f"{PG}/{databases[0]}",
        "KATAKANA_BACKUP_DIR": str(tmp_path / "backups"),
        "KATAKANA_SUBMISSIONS_DIR": str(tmp_path / "srv" / "submissions"),
        "KATAKANA_TESTSETS_DIR": str(tmp_path / "srv" / "testsets"),
    }
    run_script("backup.sh", "once", env=env)
    backup_set = next((tmp_path / "backups").glob("*-full"))
    with open(backup_set / "submissions.tar", "ab") as tar:
        tar.write(b"tampered")
    done = subprocess.run(
        ["bash", str(DEPLOY / "restore.sh"), str(backup_set)],
        env={**os.environ, **env, "DATABASE_URL": f"{PG}/{databases[1]}"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and "checksum mismatch" in done.stderr
    assert psql(databases[1], "SELECT count(*) FROM pg_tables WHERE tablename = 'result'") == "0"


def test_retention_deletes_old_sets_but_keeps_the_full_a_kept_diff_needs(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"

    def fake_set(name: str, days_old: float, base: str | None = None) -> None:
        path = backups / name
        path.mkdir(parents=True)
        if base:
            (path / "BASE").write_text(base + "\n")
        when = time.time() - days_old * 86400
        os.utime(path, (when, when))

    fake_set("20260101T000000Z-full", 40)
    fake_set("20260102T000000Z-diff", 39, base="20260101T000000Z-full")
    fake_set("20260201T000000Z-full", 20)  # old, but the diff below still needs it
    fake_set("20260215T000000Z-diff", 6, base="20260201T000000Z-full")
    (tmp_path / "srv" / "submissions").mkdir(parents=True)
    (tmp_path / "srv" / "testsets").mkdir(parents=True)
    env = {
        "DATABASE_URL": f"{PG}/{databases[0]}",
        "KATAKANA_BACKUP_DIR": str(backups),
        "KATAKANA_SUBMISSIONS_DIR": str(tmp_path / "srv" / "submissions"),
        "KATAKANA_TESTSETS_DIR": str(tmp_path / "srv" / "testsets"),
        "KATAKANA_BACKUP_KEEP_DAYS": "14",
    }
    run_script("backup.sh", "once", env=env)
    left = sorted(p.name for p in backups.iterdir() if p.is_dir())
    assert "20260101T000000Z-full" not in left and "20260102T000000Z-diff" not in left
    assert "20260201T000000Z-full" in left and "20260215T000000Z-diff" in left
    assert len(left) == 3  # plus today's (a new full: no full younger than 7 days existed)
    assert left[-1].endswith("-full")
