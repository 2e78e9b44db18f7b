# このファイルは編集してもかまいませんが、識別精度算出ウェブサイトで計算するときには
# このファイルが自動的に上書きされるため、ここでの変更は反映されません。
"""The server's util.py for the legacy contract (course generation G3).

Staged over the learner's util.py in the submission folder before the run. It behaves
like the course's G3 util: batches of 500 in order and a 14,500 size check that prints
the course's Japanese messages. It runs in one of two modes, chosen by the host through
what it mounts:

* **Recording** (the default: no ``../1_data/test_label.npy`` in the sandbox). Each batch's
  ``test_label`` is a ``TestLabels`` stand-in: an int32 (n, 15) array (one-hot of class 0
  as placeholder values) that carries the test-set index of every row. numpy's
  ``__array_ufunc__`` / ``__array_function__`` protocols let it follow what the course's
  code does with it (``argmax`` over the class axis, slicing and masking rows, ``==``
  with the predicted classes) and record, per test image, the class the learner's code
  compared it with: its prediction. ``t * log(y)`` (the one-hot form of the
  cross-entropy) records that row's log-probabilities for the loss. At the end,
  ``legacy_classes.npy`` (int16 (N,): the class, -1 never compared, -2 compared with
  two different classes or a non-class value) and, if seen, ``legacy_loss_terms.npy``
  (float64 (N, 15), NaN where not seen) go to ``$KATAKANA_OUT``; the host scores them
  against labels it never lets in. What learner code computes from the placeholders is
  meaningless and never read.
* **Labelled, self-reported** (only when a course allows it and the host mounted the
  labels): the learner's ``func_predict`` gets the real labels, util prints the
  batch-size-weighted ``Test loss:`` / ``Test accuracy:`` lines the host parses, and one
  decoy batch (500 images, every label wrong) goes to ``decoy.json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

EXPECTED_SIZE = 14500
DECOY_SIZE = 500
N_CLASSES = 15
LABEL_FILE = "../1_data/test_label.npy"
TRAIN_FILE = "../1_data/train_data.npy"
CLASSES_FILE = "legacy_classes.npy"
TRAIN_CLASSES_FILE = "legacy_train_classes.npy"
LOSS_TERMS_FILE = "legacy_loss_terms.npy"
# Which images loaddata() returns: the hidden test set, or (for the train-vs-test
# comparison, after the test set is done) the course's public training set.
_source = "../1_data/test_data.npy"
NOT_SEEN = -1
AMBIGUOUS = -2


def loaddata() -> Any:
    """テストデータを読む関数"""
    return np.load(_source)


def accuracy(func_predict: Callable[[Any, Any], Any], test_data: Any) -> None:
    """
    精度を計算する関数
    label_pred : numpy 1D array
    """
    # データ数のチェック
    data_size = len(test_data)
    if data_size != EXPECTED_SIZE:
        if data_size < EXPECTED_SIZE:
            error = "label_predのサイズが足りていません"
        else:
            error = "label_predのサイズが多すぎます"
        print(data_size, error)
        print("Test loss:", error)
        print("Test accuracy:", error)
        return
    if os.path.exists(LABEL_FILE):
        _accuracy_labelled(func_predict, test_data, np.load(LABEL_FILE))
    else:
        _accuracy_recorded(func_predict, test_data)
    if os.path.exists(TRAIN_FILE):
        _training_pass(func_predict)


def _training_pass(func_predict: Callable[[Any, Any], Any]) -> None:
    """The learner's makedataset() and func_predict() once more, on the course's public
    training set, recorded like the test set: the host shows train beside test accuracy.
    Never fails the run (the test-set result is already written)."""
    global _source
    try:
        make = getattr(sys.modules.get("__main__"), "makedataset", None)
        if not callable(make):
            return
        _source = TRAIN_FILE
        try:
            data = make()
        finally:
            _source = "../1_data/test_data.npy"
        recorder = Recorder(len(data))
        for mask in _batches(len(data)):
            func_predict(data[mask], TestLabels.for_rows(recorder, mask))
        _save_npy(os.path.join(os.environ.get("KATAKANA_OUT", "/out"), TRAIN_CLASSES_FILE),
                  recorder.classes)  # fmt: skip
    except Exception as exc:  # the learner's code on other data: report, never fail
        print(f"[util] training set skipped ({type(exc).__name__})", file=sys.stderr)


def _batches(data_size: int) -> list[np.ndarray]:
    # サーバーへの負荷を軽減するため、ミニバッチ処理で行う
    batch_size = 500
    index = np.arange(data_size)
    return [index[start : start + batch_size] for start in range(0, data_size, batch_size)]


# --------------------------------------------------------------------------- recording mode


def _accuracy_recorded(func_predict: Callable[[Any, Any], Any], test_data: Any) -> None:
    recorder = Recorder(len(test_data))
    for mn, mask in enumerate(_batches(len(test_data))):
        print(mn)
        func_predict(test_data[mask], TestLabels.for_rows(recorder, mask))
    recorder.save(os.environ.get("KATAKANA_OUT", "/out"))
    print("Test loss:", "サーバーで計算します")
    print("Test accuracy:", "サーバーで計算します")


class Recorder:
    """Per test image: the class learner code compared its label with, and loss terms."""

    def __init__(self, n: int) -> None:
        self.classes = np.full(n, NOT_SEEN, dtype=np.int16)
        self.loss_terms: np.ndarray | None = None
        self.untracked: dict[str, int] = {}

    def compare(self, ids: np.ndarray, values: Any) -> None:
        ids = ids.ravel()
        v = np.asarray(values).ravel()
        if v.dtype.kind not in "iubf":
            v = np.full(ids.shape, AMBIGUOUS)
        else:
            valid = (v >= 0) & (v < N_CLASSES) & (v == np.floor(v))
            v = np.where(valid, v, AMBIGUOUS)
        v = v.astype(np.int16)
        current = self.classes[ids]
        new = np.where(current == NOT_SEEN, v, current)
        new = np.where((current != NOT_SEEN) & (current != v), AMBIGUOUS, new)
        self.classes[ids] = new
        # The same image twice in one comparison with two different classes.
        after = self.classes[ids]
        self.classes[ids[(after != v) & (after != AMBIGUOUS)]] = AMBIGUOUS

    def loss_rows(self, ids: np.ndarray, rows: np.ndarray) -> None:
        if self.loss_terms is None:
            self.loss_terms = np.full((len(self.classes), N_CLASSES), np.nan)
        self.loss_terms[ids.ravel()] = rows.reshape(-1, N_CLASSES)

    def untrack(self, what: str) -> None:
        if len(self.untracked) < 20 or what in self.untracked:
            self.untracked[what] = self.untracked.get(what, 0) + 1

    def save(self, out_dir: str) -> None:
        try:
            _save_npy(os.path.join(out_dir, CLASSES_FILE), self.classes)
            if self.loss_terms is not None:
                _save_npy(os.path.join(out_dir, LOSS_TERMS_FILE), self.loss_terms)
        except OSError:
            return  # no writable out dir (a learner running this copy by hand)
        seen = int((self.classes >= 0).sum())
        print(f"[util] labels followed for {seen}/{len(self.classes)} images", file=sys.stderr)
        if self.untracked:
            done = ", ".join(f"{k} x{v}" for k, v in sorted(self.untracked.items()))
            print(f"[util] operations on test_label not followed: {done}", file=sys.stderr)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path + ".tmp", "wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(path + ".tmp", path)


class TestLabels(np.ndarray):
    """The stand-in for ``test_label``: an int array that records what it is compared with.

    ``_kind`` is ``"onehot"`` (last axis: the 15 classes; ``_ids`` indexes the leading
    axes) or ``"classes"`` (what ``argmax`` over the class axis gives; ``_ids`` has the
    array's shape). An instance made any other way (a view numpy made, a transpose)
    has ``_ids = None`` and is followed no further: its operations are reported as not
    followed, and the images it stands for stay unrecorded unless compared another way.
    """

    _recorder: Recorder | None
    _ids: np.ndarray | None
    _kind: str

    @classmethod
    def for_rows(cls, recorder: Recorder, ids: np.ndarray) -> TestLabels:
        placeholder = np.zeros((len(ids), N_CLASSES), dtype=np.int32)
        placeholder[:, 0] = 1
        return cls._wrap(placeholder, recorder, "onehot", ids)

    @classmethod
    def _wrap(cls, values: Any, recorder: Recorder | None, kind: str, ids: Any) -> TestLabels:
        out = np.asarray(values).view(cls)
        out._recorder, out._kind, out._ids = recorder, kind, np.asarray(ids)
        return out

    def __array_finalize__(self, obj: Any) -> None:
        self._recorder = getattr(obj, "_recorder", None)
        self._kind = getattr(obj, "_kind", "onehot")
        self._ids = None

    def _untrack(self, what: str) -> None:
        if self._recorder is not None:
            self._recorder.untrack(what)

    def _plain(self) -> np.ndarray:
        return self.view(np.ndarray)

    # ------------------------------------------------------------------ followed operations

    def argmax(self, axis: Any = None, out: Any = None, **kwargs: Any) -> Any:
        result = self._plain().argmax(axis=axis, out=out, **kwargs)
        if self._ids is None or out is not None or self._kind != "onehot":
            self._untrack("argmax")
            return result
        if axis is None and self.ndim != 1 or axis not in (None, -1, self.ndim - 1):
            self._untrack("argmax")
            return result
        return TestLabels._wrap(result, self._recorder, "classes", self._ids)

    def __getitem__(self, key: Any) -> Any:
        result = self._plain()[key]
        if self._ids is None:
            return result
        try:
            ids = self._ids[key if self._kind == "classes" else _row_key(key, self.ndim)]
        except (IndexError, TypeError, ValueError):
            ids = None
        shape = np.shape(result)
        expected = np.shape(ids) if self._kind == "classes" else (*np.shape(ids), N_CLASSES)
        if ids is None or shape != expected:
            self._untrack("indexing")
            return result
        return TestLabels._wrap(result, self._recorder, self._kind, ids)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._untrack("assignment")
        self._plain()[key] = value

    def copy(self, order: Any = "C") -> Any:  # type: ignore[override]
        return self._same(self._plain().copy(order))

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self._same(self._plain().astype(dtype, *args, **kwargs))

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        result = self._plain().reshape(*shape, **kwargs)
        if self._ids is None or result.shape != self.shape:
            if self._ids is not None:
                self._untrack("reshape")
            return result
        return self._same(result)

    def _same(self, values: Any) -> Any:
        if self._ids is None:
            return values
        return TestLabels._wrap(values, self._recorder, self._kind, self._ids)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and "out" not in kwargs and len(inputs) == 2:
            if ufunc in (np.equal, np.not_equal) and _record_comparison(*inputs):
                return ufunc(*_plain_all(inputs), **kwargs)
            if ufunc is np.multiply and _record_loss(*inputs):
                return ufunc(*_plain_all(inputs), **kwargs)
        for x in inputs:
            if isinstance(x, TestLabels) and x._ids is not None:
                x._untrack(ufunc.__name__)
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain_all(kwargs["out"]))
        return getattr(ufunc, method)(*_plain_all(inputs), **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.argmax and args and isinstance(args[0], TestLabels):
            return args[0].argmax(*args[1:], **kwargs)
        if func is np.copy and args and isinstance(args[0], TestLabels):
            return args[0].copy()
        if func in (np.shape, np.ndim, np.size):
            return func(*_plain_all(args), **kwargs)
        self._untrack(getattr(func, "__name__", "function"))
        return func(*_plain_all(args), **kwargs)


def _plain_all(values: Any) -> list[Any]:
    out: list[Any] = []
    for x in values:
        if isinstance(x, TestLabels):
            out.append(x.view(np.ndarray))
        elif isinstance(x, list | tuple) and any(isinstance(y, TestLabels) for y in x):
            out.append(type(x)(_plain_all(x)))
        else:
            out.append(x)
    return out


def _row_key(key: Any, ndim: int) -> Any:
    """The part of an index into a one-hot stand-in that selects rows, or TypeError."""
    parts = key if isinstance(key, tuple) else (key,)
    if any(p is None or p is Ellipsis for p in parts):
        raise TypeError("new axes or ellipsis")
    if len(parts) == ndim:
        if not (isinstance(parts[-1], slice) and parts[-1] == slice(None)):
            raise TypeError("the class axis is indexed")
        parts = parts[:-1]
    if len(parts) >= ndim:
        raise TypeError("the class axis is indexed")
    return parts


def _record_comparison(a: Any, b: Any) -> bool:
    """``classes == predicted`` (either order): record and say so, else False."""
    ours, other = (a, b) if isinstance(a, TestLabels) else (b, a)
    if not isinstance(ours, TestLabels) or isinstance(other, TestLabels):
        return False
    if ours._ids is None or ours._kind != "classes" or ours._recorder is None:
        return False
    other = np.asarray(other)
    if other.dtype.kind not in "iubf" or np.broadcast_shapes(other.shape, ours.shape) != ours.shape:
        return False
    ours._recorder.compare(ours._ids, np.broadcast_to(other, ours.shape))
    return True


def _record_loss(a: Any, b: Any) -> bool:
    """``onehot * log(y)`` (either order) with a float (…, 15) array: record the rows."""
    ours, other = (a, b) if isinstance(a, TestLabels) else (b, a)
    if not isinstance(ours, TestLabels) or isinstance(other, TestLabels):
        return False
    if ours._ids is None or ours._kind != "onehot" or ours._recorder is None:
        return False
    other = np.asarray(other)
    if other.dtype.kind != "f" or other.shape != ours.shape:
        return False
    ours._recorder.loss_rows(ours._ids, other)
    return True


# --------------------------------------------------------------------------- labelled mode


def _accuracy_labelled(
    func_predict: Callable[[Any, Any], Any], test_data: Any, test_label: np.ndarray
) -> None:
    batches = _batches(len(test_data))
    # Own generator: the learner's global np.random state must stay untouched.
    rng = np.random.default_rng()
    decoy_position = int(rng.integers(0, len(batches) + 1))
    decoy = None

    li_loss = []
    li_accuracy = []
    li_num = []
    for mn, mask in enumerate(batches):
        if mn == decoy_position:
            decoy = _run_decoy(func_predict, test_data, test_label, rng)
        print(mn)
        data = test_data[mask]
        label = test_label[mask]
        loss, accuracy = func_predict(data, label)
        print(loss, accuracy)
        li_loss.append(loss)
        li_accuracy.append(accuracy)
        li_num.append(len(data))
    if decoy is None:
        decoy = _run_decoy(func_predict, test_data, test_label, rng)

    test_loss = np.dot(li_loss, li_num) / np.sum(li_num)
    test_accuracy = np.dot(li_accuracy, li_num) / np.sum(li_num)
    decoy["position"] = decoy_position
    decoy["test_loss"] = _as_float(test_loss)
    decoy["test_accuracy"] = _as_float(test_accuracy)
    _write_decoy(decoy)

    print("Test loss:", test_loss)
    print("Test accuracy:", test_accuracy)


def decoy_indices(test_label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """DECOY_SIZE indices spread evenly over the classes, in shuffled order."""
    classes = np.argmax(test_label, axis=1)
    per_class = np.full(N_CLASSES, DECOY_SIZE // N_CLASSES)
    per_class[rng.choice(N_CLASSES, DECOY_SIZE % N_CLASSES, replace=False)] += 1
    chosen = [
        rng.choice(np.flatnonzero(classes == c), count, replace=False)
        for c, count in enumerate(per_class)
    ]
    return rng.permutation(np.concatenate(chosen))


def wrong_labels(
    test_label: np.ndarray, indices: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One-hot labels with every class moved by a random non-zero offset."""
    true = np.argmax(test_label[indices], axis=1)
    wrong = (true + rng.integers(1, N_CLASSES, size=len(indices))) % N_CLASSES
    labels = np.zeros((len(indices), N_CLASSES), dtype=test_label.dtype)
    labels[np.arange(len(indices)), wrong] = 1
    return labels


def _run_decoy(
    func_predict: Callable[[Any, Any], Any],
    test_data: Any,
    test_label: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, Any]:
    result: dict[str, Any] = {"n": DECOY_SIZE, "loss": None, "accuracy": None, "error": None}
    try:
        indices = decoy_indices(test_label, rng)
        loss, accuracy = func_predict(test_data[indices], wrong_labels(test_label, indices, rng))
        result["loss"] = _as_float(loss)
        result["accuracy"] = _as_float(accuracy)
    except Exception as exc:  # the decoy must never break an honest run
        result["error"] = type(exc).__name__
    return result


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _write_decoy(decoy: dict[str, Any]) -> None:
    out_dir = os.environ.get("KATAKANA_OUT", "/out")
    try:
        with open(os.path.join(out_dir, "decoy.json"), "w", encoding="utf-8") as f:
            json.dump(decoy, f)
    except OSError:
        pass  # no writable out dir (e.g. a learner running this copy by hand)
