"""How far averaging more nets of one recipe can go, from runs already made: no training.

Reads the held-out predictions that ``net8_runs --models N`` keeps for each member
(``members_tta`` in its ``.npz`` files), pools the members of the given files, and prints

- the mean squared error of the average of every subset of N members, for each N, as RMSE;
- its fit ``MSE(N) = floor + spread / N`` (exact for the mean over all subsets when every
  member is exchangeable, and a fair summary when they are not), so ``sqrt(floor)`` is what
  infinitely many such members would score;
- for two members of each pair of heads, the correlation of their errors and the RMSE of
  their average.

    python -m benchmarks.ensemble_floor --data ../shared/data/faces15 \\
        benchmarks/net8-budget-runs-valid10_..._epyc-axis-curve-e1*-s*.npz --heads dense,softargmax
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from .net8_runs import held_out_targets


def subset_mse(members, truth) -> list[float]:
    """Mean over every subset of n members of the MSE of their average, for n = 1 .. all."""
    labelled = ~np.isnan(truth)

    def mse(p):
        return float(np.mean((p[labelled] - truth[labelled]) ** 2))
    return [float(np.mean([mse(members[list(c)].mean(axis=0))
                           for c in itertools.combinations(range(len(members)), n)]))
            for n in range(1, len(members) + 1)]


def floor_fit(mse_by_n) -> tuple[float, float]:
    """(floor, spread) of the least-squares fit MSE(n) = floor + spread / n."""
    n = np.arange(1, len(mse_by_n) + 1)
    (floor, spread), *_ = np.linalg.lstsq(np.c_[np.ones(len(n)), 1 / n], np.asarray(mse_by_n),
                                          rcond=None)
    return float(floor), float(spread)


def by_head_pair(members, truth, heads) -> dict:
    """For each pair of heads: (the mean correlation of two such members' errors, the RMSE of
    the mean squared error of their average)."""
    labelled = ~np.isnan(truth)
    errors = [(m - truth)[labelled] for m in members]
    pairs = {}
    for i, j in itertools.combinations(range(len(members)), 2):
        key = "-".join(sorted((heads[i], heads[j])))
        pairs.setdefault(key, []).append((np.corrcoef(errors[i], errors[j])[0, 1],
                                          np.mean(((errors[i] + errors[j]) / 2) ** 2)))
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
    truth = held_out_targets(args.data)
    by_n = subset_mse(members, truth)
    floor, spread = floor_fit(by_n)
    print(f"{len(members)} members, flip TTA, held-out RMSE of an average of n:")
    for n, mse in enumerate(by_n, 1):
        print(f"  n={n}: {np.sqrt(mse):.4f} (fit {np.sqrt(floor + spread / n):.4f})")
    print(f"  infinitely many: {np.sqrt(max(floor, 0.0)):.4f}")
    for key, (corr, rmse) in by_head_pair(members, truth, heads).items():
        print(f"  pairs {key}: errors correlate {corr:.3f}, their average {rmse:.4f}")


if __name__ == "__main__":
    main()
