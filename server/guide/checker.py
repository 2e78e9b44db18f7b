"""The local-check kit learners download from the guide: ``katakana-check.zip``.

Everything ``python -m scorer check`` needs and nothing else: ``scorer/``, the parts of
``sandbox/`` that the process backend uses, the in-sandbox harness, the compiled ja/en
catalogs, the template notebook and a README. Built from this server's own files, so the
check a learner runs is exactly the code that scores their upload, at this release. No
Django, Docker, Celery or PyTorch inside: a learner needs Python 3.11+ with numpy and
IPython (plus their own framework). ``tests/server/guide/test_checker_kit.py`` unpacks
the kit and runs a check with nothing else of this repository importable.
"""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

from django.conf import settings

KIT_NAME = "katakana-check"
# (folder, patterns) under the project root; each pattern must match at least one file.
KIT_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("scorer", ("*.py",)),
    ("sandbox", ("__init__.py", "base.py", "backends.py", "process_backend.py")),
    ("sandbox/runner", ("*.py",)),
    ("locale/ja/LC_MESSAGES", ("django.mo",)),
    ("locale/en/LC_MESSAGES", ("django.mo",)),
    ("kit", ("submit_katakana.ipynb",)),
)
# The zip's entries carry this fixed time: the same release gives the same bytes.
ZIP_TIME = (2026, 1, 1, 0, 0, 0)

LAUNCHER = '''\
"""Run the katakana scoring server's local check: python katakana_check.py my.zip"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scorer.__main__ import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
'''

README = """\
katakana-check — 提出 zip をアップロード前に確かめる (local check)
====================================================================

サーバーと同じ手順（zip の展開と検査、エントリーポイントの検出、同じハーネス、
同じ採点）で、提出 zip を自分のコンピューターで確かめます。必要なのは
Python 3.11 以上と numpy、IPython（と、モデルが使うライブラリ）だけです。

    python katakana-check/katakana_check.py submit_katakana.zip
    python katakana-check/katakana_check.py submit_katakana.zip --data ../1_data --lang en

データは zip の隣（または一つ上）にある 1_data/train_data.npy と train_label.npy、
または --data で指定したフォルダーを使います。訓練データでの正解率は、
非公開のテストデータでの正解率より高めに出ます。
終了コード: 0 採点できた / 1 提出物の問題 / 2 使い方・環境の問題。

template: kit/submit_katakana.ipynb（検証済み形式のテンプレート）

---

Checks a submission zip on your own computer with the same steps as the server
(unpacking and archive checks, entry-point detection, the same harness, the same
scoring). Needs Python 3.11+ with numpy and IPython (plus your model's framework).
Data: 1_data/train_data.npy and train_label.npy next to the zip (or one level up),
or the folder given with --data. Exit status: 0 scored, 1 the submission failed,
2 usage or environment problem.
"""


def kit_members(root: Path) -> list[tuple[str, Path]]:
    """(path inside the kit, file on disk), sorted; fails loudly if a part is missing."""
    members = []
    for folder, patterns in KIT_FILES:
        for pattern in patterns:
            found = sorted((root / folder).glob(pattern))
            if not found:
                raise FileNotFoundError(f"checker kit: nothing matches {folder}/{pattern}")
            members += [(f"{folder}/{path.name}", path) for path in found]
    return sorted(members)


def build_checker_kit(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        generated = {"README.txt": README, "katakana_check.py": LAUNCHER}
        for name, text in sorted(generated.items()):
            _write(archive, f"{KIT_NAME}/{name}", text.encode("utf-8"))
        for name, path in kit_members(root):
            _write(archive, f"{KIT_NAME}/{name}", path.read_bytes())
    return buffer.getvalue()


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


@functools.cache
def checker_kit_bytes() -> bytes:
    """The kit of this release, built once per process (about 150 KB)."""
    return build_checker_kit(Path(settings.BASE_DIR))
