"""Train/val/test assignment of fully sampled slices, shared by every simulated dataset.

Both modes assign a split to each **slice id** (``"<subject>/<axis><index>"``, see
data_tools/simdata.py) as a pure function of the id set and the seed, so every variant of a slice
(all interleaves, all patterns, the coil set) lands in the same split in every dataset. This fixes
the original's defect D1 (reference §7.5: the radial split windows overlapped).

- ``"subject"`` (default): subjects are shuffled with ``numpy.random.default_rng(seed)`` and cut
  60/20/20; no subject contributes slices to two splits (the original leaked neighbouring slices
  of one knee between train and test, reference §1.5, L1603).
- ``"slice"``: the original scheme: the sorted unique slice ids are permuted with
  ``np.random.seed(1993)``-style legacy ``RandomState(seed).permutation`` and cut
  train 0.6 / test 0.2 / val 0.2 in that order (reference §1.5, code L16-37).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .errors import require
from .simdata import SPLITS

SPLIT_SEED = 1993  # reference §1.5: np.random.seed(1993)
FRACTIONS = (0.6, 0.2, 0.2)  # train, val, test
MODES = ("subject", "slice")


def _check(fractions: Sequence[float]) -> tuple[float, float, float]:
    require(len(fractions) == 3 and all(f >= 0 for f in fractions) and abs(sum(fractions) - 1.0) < 1e-6,
            f"split fractions {list(fractions)}", field="split_fractions",
            expected="three non-negative numbers (train, val, test) summing to 1")
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def _counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    # With few subjects keep every requested split non-empty (4 demo subjects → 2/1/1).
    if n >= 3:
        n_val = max(n_val, 1) if fractions[1] > 0 else 0
        n_test = max(n_test, 1) if fractions[2] > 0 else 0
    n_train = max(n - n_val - n_test, 0)
    return n_train, n_val, n_test


def subject_split(subjects: Iterable[str], fractions: Sequence[float] = FRACTIONS,
                  seed: int = SPLIT_SEED) -> dict[str, str]:
    """Subject id → ``train``/``val``/``test``; depends only on the sorted set of ids and the seed."""
    fr = _check(fractions)
    ids = sorted(set(subjects))
    perm = np.random.default_rng(seed).permutation(len(ids))
    n_train, n_val, _ = _counts(len(ids), fr)
    out = {}
    for rank, i in enumerate(perm):
        out[ids[i]] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return out


def slice_split(slice_ids: Iterable[str], fractions: Sequence[float] = FRACTIONS,
                seed: int = SPLIT_SEED) -> dict[str, str]:
    """Slice id → split, the original's slice-level scheme (order train, test, val)."""
    fr = _check(fractions)
    ids = sorted(set(slice_ids))
    perm = np.random.RandomState(seed).permutation(len(ids))
    n = len(ids)
    n_train = int(n * fr[0])
    n_test = int(n * fr[2])
    out = {}
    for rank, i in enumerate(perm):
        out[ids[i]] = "train" if rank < n_train else ("test" if rank < n_train + n_test else "val")
    return out


def assign_splits(slice_ids: Sequence[str], mode: str = "subject", fractions: Sequence[float] = FRACTIONS,
                  seed: int = SPLIT_SEED) -> dict[str, str]:
    """Slice id → split for all ``slice_ids`` (the full, un-subsampled slice list of the data)."""
    require(mode in MODES, f"unknown split mode '{mode}'", field="split", expected=" | ".join(MODES))
    if mode == "slice":
        return slice_split(slice_ids, fractions, seed)
    by_subject = subject_split((s.split("/")[0] for s in slice_ids), fractions, seed)
    return {s: by_subject[s.split("/")[0]] for s in slice_ids}


USES = {"train": "`pipeline train` fits on train", "val": "`pipeline train` validates on val",
        "test": "`pipeline evaluate` scores test"}


def empty_splits(slice_splits: dict[str, str], mode: str = "subject",
                 fractions: Sequence[float] = FRACTIONS) -> str | None:
    """``None`` when train, val and test all got data, else one line saying which did not and what to do.

    ``slice_splits`` is slice id → split (:func:`assign_splits`); counts are of subjects for a
    subject split (fewer than 3 leave val and test empty: 2 subjects round to 2/0/0), else of slices.
    A split that ``fractions`` (train, val, test) gives no share is empty by choice: the line says
    so instead of asking for more data.
    """
    units = {(sid.split("/")[0] if mode == "subject" else sid): split for sid, split in slice_splits.items()}
    counts = {s: sum(v == s for v in units.values()) for s in SPLITS}
    empty = [s for s in SPLITS if counts[s] == 0]
    if not empty:
        return None
    what = "subject" if mode == "subject" else "slice"
    shares = dict(zip(SPLITS, _check(fractions)))
    unasked = [s for s in empty if shares[s] == 0]
    rounded = [s for s in empty if shares[s] > 0]
    todo = []
    if rounded:
        more = ("simulate from 3 or more subjects, or with --split slice" if mode == "subject"
                else "simulate more slices (a smaller --slice_stride, more --axes or subjects)")
        todo.append(more if not unasked else f"{' and '.join(rounded)}: {more}")
    if unasked:
        todo.append(f"split_fractions {[float(f) for f in fractions]} gives {' and '.join(unasked)} no share")
    return (f"split by {mode}: {len(units)} {what}{'s give' if len(units) != 1 else ' gives'} "
            + ", ".join(f"{s} {counts[s]}" for s in SPLITS)
            + f"; nothing in {' and '.join(empty)} ({', '.join(USES[s] for s in empty)}): " + "; ".join(todo))
