"""How far averaging more nets of one recipe can go, from runs already made: no training.

Reads the held-out predictions that ``net8_runs --models N`` keeps for each member
(``members_tta`` in its ``.npz`` files), pools the members of the given files, and prints

- the mean, over every subset of n members, of the MSE of their average, as RMSE, for each n;
- what infinitely many such members would score;
- for two members of each pair of heads, the correlation of their errors and the RMSE of
  their average.

All of it follows from the members' mean error products ``P[i, j]`` (over the labelled
values): the average of a subset has MSE ``mean of P over the subset's pairs, i with itself
included``, so the mean over every subset of n is exactly ``floor + spread / n``, with
``floor`` the mean of P off its diagonal (infinitely many members) and ``floor + spread``
the mean of its diagonal (one member).

    python -m benchmarks.ensemble_floor --data ../shared/data/faces15 \\
        benchmarks/net8-budget-runs-valid10_..._epyc-axis-curve-e1*-s*.npz --heads dense,softargmax
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from .net8_runs import held_out_targets


def errors_on_labels(members, truth) -> np.ndarray:
    """(members, labelled values): each member's error on every labelled held-out value."""
    labelled = ~np.isnan(truth)
    return np.stack([(m - truth)[labelled] for m in members]).astype(np.float64)


def floor_and_spread(products) -> tuple[float, float]:
    """(floor, spread) of ``mean MSE of an n-subset's average = floor + spread / n``."""
    k = len(products)
    floor = (products.sum() - np.trace(products)) / (k * (k - 1))
    return float(floor), float(np.trace(products) / k - floor)


def by_head_pair(errors, products, heads) -> dict:
    """For each pair of heads: (the mean correlation of two such members' errors, the RMSE of
    the mean squared error of their average)."""
    correlation = np.corrcoef(errors)
    pairs = {}
    for i, j in itertools.combinations(range(len(errors)), 2):
        key = "-".join(sorted((heads[i], heads[j])))
        average = (products[i, i] + products[j, j] + 2 * products[i, j]) / 4
        pairs.setdefault(key, []).append((correlation[i, j], average))
    return {key: (float(np.mean([c for c, _ in v])), float(np.sqrt(np.mean([e for _, e in v]))))
            for key, v in sorted(pairs.items())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("npz", nargs="+", help="net8_runs' held-out predictions of --models runs")
    p.add_argument("--data", default="../shared/data/faces15")
    p.add_argument("--heads", default="", help="the members' heads (or any names) in turn, repeated over "
                   "the files; as many as all members to name each (e.g. the loss too)")
    args = p.parse_args(argv)
    members = np.concatenate([np.load(f)["members_tta"] for f in args.npz])
    names = args.heads.split(",") if args.heads else ["net"]
    heads = [names[i % len(names)] for i in range(len(members))]
    errors = errors_on_labels(members, held_out_targets(args.data))
    products = errors @ errors.T / errors.shape[1]
    floor, spread = floor_and_spread(products)
    print(f"{len(members)} members, flip TTA, held-out RMSE of an average of n, "
          "mean over every subset:")
    for n in range(1, len(members) + 1):
        print(f"  n={n}: {np.sqrt(floor + spread / n):.4f}")
    print(f"  infinitely many: {np.sqrt(max(floor, 0.0)):.4f}")
    for key, (corr, rmse) in by_head_pair(errors, products, heads).items():
        print(f"  pairs {key}: errors correlate {corr:.3f}, their average {rmse:.4f}")


if __name__ == "__main__":
    main()
