"""Honest splits: identical images always fall on the same side.

Kaggle's training.csv holds exact duplicate images (and some test images repeat training
images). A validation split, fold or held-out set that puts one copy on each side scores
memory, not skill. Every split here groups rows by a hash of their pixels and splits the
groups: the net's own validation split (``GroupedValidSplit``, what ``KeypointNet`` uses),
cross-validation and grid-search folds (``grouped_kfold``) and the zoo's held-out rows
(``grouped_holdout``). Where no image repeats, each is exactly the ungrouped split it
replaces (skorch's ValidSplit, sklearn's shuffled KFold, a seeded permutation), so results
on such data are unchanged.
"""
from __future__ import annotations

import hashlib

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit


def image_groups(X) -> np.ndarray:
    """For every row, the index of the first row with exactly the same pixels."""
    if hasattr(X, "detach"):  # a torch tensor, on any device
        X = X.detach().cpu().numpy()
    X = np.ascontiguousarray(np.asarray(X).reshape(len(X), -1))
    first: dict[bytes, int] = {}
    return np.array([first.setdefault(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), i)
                     for i, row in enumerate(X)], dtype=np.int64)


def _members(groups):
    """(group labels in order of first appearance, {label: its rows})."""
    rows: dict[int, list] = {}
    for i, g in enumerate(groups):
        rows.setdefault(int(g), []).append(i)
    return np.array(list(rows), dtype=np.int64), rows


def _rows_of(labels, chosen, rows) -> np.ndarray:
    return np.array([r for k in chosen for r in rows[int(labels[k])]], dtype=np.int64)


def grouped_shuffle_split(X, fraction, random_state=0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, valid rows): ShuffleSplit(test_size=fraction) over the image groups."""
    labels, rows = _members(image_groups(X))
    split = ShuffleSplit(n_splits=1, test_size=fraction, random_state=random_state)
    train, valid = next(split.split(np.zeros((len(labels), 1))))
    return _rows_of(labels, train, rows), _rows_of(labels, valid, rows)


def grouped_kfold(X, folds, random_state=0) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(train rows, test rows)] of a shuffled, seeded KFold over the image groups."""
    labels, rows = _members(image_groups(X))
    if len(labels) < folds:
        raise ValueError(f"{len(labels)} distinct images cannot be split into {folds} folds")
    kfold = KFold(folds, shuffle=True, random_state=random_state)
    return [(np.sort(_rows_of(labels, train, rows)), np.sort(_rows_of(labels, test, rows)))
            for train, test in kfold.split(np.zeros((len(labels), 1)))]


def grouped_holdout(X, fraction=0.2, random_state=0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows), both sorted: whole groups, in a seeded random order,
    are held out until ``fraction`` of the rows are."""
    labels, rows = _members(image_groups(X))
    order = np.random.default_rng(random_state).permutation(len(labels))
    n_held = int(round(len(X) * fraction))
    sizes = np.array([len(rows[int(labels[k])]) for k in order])
    taken = int(np.searchsorted(np.cumsum(sizes), n_held)) + (1 if n_held else 0)
    held = _rows_of(labels, order[:min(taken, len(order))], rows) if n_held else np.array([], np.int64)
    return np.setdiff1d(np.arange(len(X)), held), np.sort(held)


class GroupedValidSplit:
    """A skorch ``train_split``: (train, valid) Subsets of the dataset, split as
    ``grouped_shuffle_split`` over the dataset's images."""

    def __init__(self, fraction=0.2, random_state=0):
        self.fraction = fraction
        self.random_state = random_state

    def __call__(self, dataset, y=None, groups=None):
        from torch.utils.data import Subset
        train, valid = grouped_shuffle_split(dataset.X, self.fraction, self.random_state)
        return Subset(dataset, train), Subset(dataset, valid)

    def __repr__(self):
        return f"GroupedValidSplit({self.fraction}, random_state={self.random_state})"
