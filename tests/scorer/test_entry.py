"""Entry-point detection on notebooks and scripts shaped like real submissions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorer.entry import EntryPoint, detect_entry, list_candidates
from scorer.errors import ErrorClass, ScoringError

VERIFIED_CELL = (
    "import numpy as np\n\ndef predict(test_data):\n    return np.zeros(len(test_data))\n"
)
# The course's legacy template, trimmed (legacy-contract.md §2.3).
LEGACY_CELL = (
    "import numpy as np\nimport util\n\n"
    "def makedataset():\n    return util.loaddata()\n\n"
    "def func_predict(test_data, test_label):\n    return 0.0, 0.0\n\n"
    "def main():\n    test_data = makedataset()\n    util.accuracy(func_predict, test_data)\n\n"
    'if __name__=="__main__":\n    main()\n'
)


def notebook(*cells: str | list[str], cell_type: str = "code") -> str:
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 2,
            "metadata": {},
            "cells": [
                {"cell_type": cell_type, "metadata": {}, "source": source, "outputs": []}
                for source in cells
            ],
        }
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content, encoding="utf-8")
    return root


def no_entry(root: Path) -> ScoringError:
    with pytest.raises(ScoringError) as caught:
        detect_entry(root)
    assert caught.value.error_class is ErrorClass.NO_ENTRY_POINT
    return caught.value


def test_it_finds_predict_in_the_notebook(tmp_path: Path) -> None:
    write(tmp_path, {"submit_katakana.ipynb": notebook("%load_ext autoreload", VERIFIED_CELL)})
    entry = detect_entry(tmp_path)
    assert entry == EntryPoint("verified", "submit_katakana.ipynb", "ipynb", entry.reason)
    assert "predict" in entry.reason


def test_it_finds_the_legacy_template(tmp_path: Path) -> None:
    write(tmp_path, {"submit_katakana.ipynb": notebook("# markdown-ish", LEGACY_CELL)})
    entry = detect_entry(tmp_path)
    assert (entry.contract, entry.path, entry.kind) == ("legacy", "submit_katakana.ipynb", "ipynb")


def test_verified_wins_over_legacy_in_another_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"submit_katakana.ipynb": notebook(LEGACY_CELL), "submission.py": VERIFIED_CELL},
    )
    entry = detect_entry(tmp_path)
    assert (entry.contract, entry.path, entry.kind) == ("verified", "submission.py", "py")


def test_the_exact_notebook_wins_over_its_copies(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "submit_katakana.ipynb": notebook(VERIFIED_CELL),
            "submit_katakana-Copy1.ipynb": notebook(VERIFIED_CELL),
        },
    )
    assert detect_entry(tmp_path).path == "submit_katakana.ipynb"


@pytest.mark.parametrize("name", ["submit_katakana-Copy1.ipynb", "Submit_Katakana.ipynb"])
def test_it_accepts_a_single_renamed_notebook(tmp_path: Path, name: str) -> None:
    write(tmp_path, {name: notebook(LEGACY_CELL), "train.ipynb": notebook(VERIFIED_CELL)})
    entry = detect_entry(tmp_path)
    assert (entry.contract, entry.path) == ("legacy", name)


def test_two_fitting_renamed_notebooks_are_ambiguous(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "submit_katakana-Copy1.ipynb": notebook(VERIFIED_CELL),
            "submit_katakana-Copy2.ipynb": notebook(VERIFIED_CELL),
        },
    )
    error = no_entry(tmp_path)
    assert error.code == "entry_ambiguous"
    assert "submit_katakana-Copy1.ipynb" in error.render()
    assert "submit_katakana-Copy2.ipynb" in error.render()


def test_only_the_copy_that_fits_is_chosen(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "submit_katakana-Copy1.ipynb": notebook("x = 1"),
            "submit_katakana-Copy2.ipynb": notebook(VERIFIED_CELL),
        },
    )
    assert detect_entry(tmp_path).path == "submit_katakana-Copy2.ipynb"


def test_it_reads_the_py_form(tmp_path: Path) -> None:
    write(tmp_path, {"submit_katakana.py": LEGACY_CELL})
    entry = detect_entry(tmp_path)
    assert (entry.contract, entry.path, entry.kind) == ("legacy", "submit_katakana.py", "py")


def test_cells_may_be_lists_of_lines(tmp_path: Path) -> None:
    lines = VERIFIED_CELL.splitlines(keepends=True)
    write(tmp_path, {"submit_katakana.ipynb": notebook(lines)})
    assert detect_entry(tmp_path).contract == "verified"


def test_magics_and_shell_lines_do_not_hide_definitions(tmp_path: Path) -> None:
    cell = (
        "%matplotlib inline\n!pip install tqdm\nfiles = !ls\nnp.load?\n"
        "try:\n    from google.colab import files\n    !pip install x\n"
        "except ImportError:\n    pass\n\n" + VERIFIED_CELL
    )
    write(tmp_path, {"submit_katakana.ipynb": notebook(cell)})
    assert detect_entry(tmp_path).contract == "verified"


def test_a_cell_that_does_not_parse_is_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"submit_katakana.ipynb": notebook("def broken(:\n    pass\n", VERIFIED_CELL)},
    )
    assert detect_entry(tmp_path).contract == "verified"


def test_non_python_cell_magics_and_markdown_are_ignored(tmp_path: Path) -> None:
    bash = "%%bash\ndef predict(x):\n"
    write(tmp_path, {"submit_katakana.ipynb": notebook(bash)})
    assert no_entry(tmp_path).code == "no_entry_point"
    write(tmp_path, {"submit_katakana.ipynb": notebook(VERIFIED_CELL, cell_type="markdown")})
    assert no_entry(tmp_path).code == "no_entry_point"


def test_predict_inside_a_function_or_class_does_not_count(tmp_path: Path) -> None:
    cell = (
        "class Net:\n    def predict(self, x):\n        return x\n\n"
        "def setup():\n    def predict(x):\n        return x\n"
    )
    write(tmp_path, {"submit_katakana.ipynb": notebook(cell)})
    assert no_entry(tmp_path).code == "no_entry_point"


def test_predict_bound_by_assignment_or_import_counts(tmp_path: Path) -> None:
    write(tmp_path, {"submit_katakana.ipynb": notebook("from mymodel import predict\n")})
    assert detect_entry(tmp_path).contract == "verified"
    write(tmp_path, {"submit_katakana.ipynb": notebook("predict = lambda x: x\n")})
    assert detect_entry(tmp_path).contract == "verified"


def test_a_predict_needing_two_arguments_is_not_the_verified_contract(tmp_path: Path) -> None:
    # The 2018 template's predict(test_data, test_label) returned (loss, accuracy).
    cell = "def predict(test_data, test_label):\n    return 0, 0\n\ndef main(d):\n    pass\n"
    write(tmp_path, {"submit_katakana.ipynb": notebook(cell)})
    assert no_entry(tmp_path).code == "no_entry_point"


def test_predict_with_optional_extra_arguments_is_accepted(tmp_path: Path) -> None:
    cell = "def predict(test_data, batch_size=500, *, verbose=False):\n    return test_data\n"
    write(tmp_path, {"submit_katakana.ipynb": notebook(cell)})
    assert detect_entry(tmp_path).contract == "verified"


def test_learner_code_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cell = f"open({str(marker)!r}, 'w').write('x')\n" + VERIFIED_CELL
    write(tmp_path, {"submit_katakana.ipynb": notebook(cell), "submission.py": cell})
    detect_entry(tmp_path)
    list_candidates(tmp_path)
    assert not marker.exists()


def test_no_entry_point_lists_what_was_found(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.ipynb": notebook("def train():\n    pass\n"),
            "katakana_model.py": "class Net:\n    pass\ndef build():\n    pass\n",
            "kadai/submit_katakana.ipynb": notebook(VERIFIED_CELL),
        },
    )
    error = no_entry(tmp_path)
    assert error.code == "no_entry_point"
    text = error.render()
    assert "train.ipynb [train]" in text
    assert "katakana_model.py [build]" in text
    assert "kadai/submit_katakana.ipynb" in text


def test_an_empty_folder_has_no_entry_point(tmp_path: Path) -> None:
    error = no_entry(tmp_path)
    assert error.code == "no_entry_point"
    assert error.params["found"] == "-"


def test_an_oversized_notebook_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("scorer.entry.MAX_NOTEBOOK_BYTES", 1024)
    outputs = "x" * 2048
    write(tmp_path, {"submit_katakana.ipynb": notebook(VERIFIED_CELL + "#" + outputs)})
    error = no_entry(tmp_path)
    assert error.code == "entry_too_large"
    assert "submit_katakana.ipynb" in error.render()


def test_a_notebook_that_is_not_json_is_reported(tmp_path: Path) -> None:
    write(tmp_path, {"submit_katakana.ipynb": "def predict(x):\n    return x\n"})
    error = no_entry(tmp_path)
    assert error.code == "entry_unreadable"
    assert "submit_katakana.ipynb" in error.render()


def test_a_script_with_a_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, {"submission.py": "import numpy\n\ndef predict(x)\n    return x\n"})
    error = no_entry(tmp_path)
    assert error.code == "entry_syntax_error"
    assert error.params == {"entry": "submission.py", "line": 3}


def test_an_nbformat3_notebook_is_read(tmp_path: Path) -> None:
    old = {
        "nbformat": 3,
        "worksheets": [{"cells": [{"cell_type": "code", "input": VERIFIED_CELL}]}],
    }
    write(tmp_path, {"submit_katakana.ipynb": json.dumps(old)})
    assert detect_entry(tmp_path).contract == "verified"
