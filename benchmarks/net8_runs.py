"""net8 on real faces: train variants on one held-out split, append one JSON line per run.

    python -m benchmarks.net8_runs --data ../shared/data/faces15 --out benchmarks/net8-runs.jsonl \\
        --variant base --seeds 0,1,2 [--epochs 120]

Each variant is net8 with some parameters changed through ``set_params`` (``VARIANTS``
below). The split is ``splits.grouped_holdout`` (20%, seed 0): the same rows for every run, and
never the competition's test images. A line records the held-out RMSE in pixels over the
labelled values, with and without flip TTA, the training seconds, epochs and precision.
``--models N`` fits ``make train MODELS=N``'s seed ensemble from each of ``--seeds`` instead
(one line per ensemble, its members' scores in it). ``--summary`` prints a Markdown table
(mean and spread over seeds) of a results file. ``--rescore M.joblib ...`` scores models kept
with ``--save-models`` again, with flip TTA alone and over a grid of shifts (``--tta-shift``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import joblib
import numpy as np

import torch

from kfkd_kit import configs, data
from kfkd_kit.utils import provenance
from kfkd_kit.utils.atomic import write_section
from kfkd_kit.meta.ensemble import FoldEnsemble, SeedEnsemble
from kfkd_kit.net.estimator import flip_axis_of
from kfkd_kit.net.losses import MaskedL1Loss
from kfkd_kit.net.metrics import masked_rmse_px
from kfkd_kit.net.nets import BNCNN
from kfkd_kit.meta.tta import flip_tta
from kfkd_kit.data.splits import grouped_holdout

NO_AUGMENT = {f"net__iterator_train__{k}": 0.0
              for k in ("rotate", "scale", "shift", "brightness", "contrast")}

# name -> (what it changes, set_params overrides of net8's Pipeline)
VARIANTS = {
    "base": ("net8 as configured", {}),
    "no-affine": ("no rotation/scale/shift", {k: 0.0 for k in NO_AUGMENT
                                                if k.rsplit("__", 1)[1] in ("rotate", "scale", "shift")}),
    "no-intensity": ("no brightness/contrast jitter", {k: 0.0 for k in NO_AUGMENT
                                                       if k.rsplit("__", 1)[1] in ("brightness", "contrast")}),
    "no-augment": ("no augmentation at all (no flip either)",
                   dict(NO_AUGMENT, net__iterator_train__flip=False)),
    "no-flip": ("no flip augmentation (the other augmentation kept)",
                {"net__iterator_train__flip": False}),
    "no-average": ("no weight average", {"net__callbacks__weight_average": None}),
    "no-dropout": ("dropout 0", {"net__module__dropout": 0.0}),
    "width24": ("width 24", {"net__module__width": 24}),
    "width12": ("width 12", {"net__module__width": 12}),
    "width32": ("width 32", {"net__module__width": 32}),
    "stem1": ("a stride-1 first layer (full-size 96x96 activations)",
              {"net__module__layers": ((1, 1), (2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 2))}),
    "fp32": ("fp32 instead of bf16", {"net__precision": "fp32"}),
    "lr1e-3": ("peak lr 1e-3", {"net__callbacks__lr_schedule__max_lr": 1e-3}),
    "lr6e-3": ("peak lr 6e-3", {"net__callbacks__lr_schedule__max_lr": 6e-3}),
    "lr1.2e-2": ("peak lr 1.2e-2", {"net__callbacks__lr_schedule__max_lr": 1.2e-2}),
    "lr2.4e-2": ("peak lr 2.4e-2", {"net__callbacks__lr_schedule__max_lr": 2.4e-2}),
    "batch64": ("batch 64", {"net__batch_size": 64}),
    "affine-strong": ("rotate 20, scale 0.12, shift 6",
                      {"net__iterator_train__rotate": 20.0, "net__iterator_train__scale": 0.12,
                       "net__iterator_train__shift": 6.0}),
    "affine-weak": ("rotate 6, scale 0.04, shift 1.5",
                    {"net__iterator_train__rotate": 6.0, "net__iterator_train__scale": 0.04,
                     "net__iterator_train__shift": 1.5}),
    "avg995": ("weight average decay 0.995", {"net__callbacks__weight_average__decay": 0.995}),
    "hidden256": ("a 256-unit hidden layer in the head", {"net__module__hidden": 256}),
    "hidden512": ("a 512-unit hidden layer in the head", {"net__module__hidden": 512}),
    "dropout0.3": ("dropout 0.3", {"net__module__dropout": 0.3}),
    "v1": ("the first net8's layers (BNCNN.LAYERS_V1: a stride-1 layer at 48x48)",
           {"net__module__layers": BNCNN.LAYERS_V1}),
    "slim": ("slimmer middle layers (1,2),(2,2),(3,1),(4,2),(6,1),(8,2)",
             {"net__module__layers": BNCNN.LAYERS}),
    "softargmax": ("a soft-argmax head (heatmaps on a 12x12 last layer) instead of the dense one",
                   {"net__module__head": "softargmax", "net__module__layers": BNCNN.LAYERS_12}),
    "l1": ("L1 loss (masked) instead of the squared error", {"net__criterion": MaskedL1Loss}),
    "wd0": ("no weight decay", {"net__optimizer__weight_decay": 0.0}),
    "wd0.2": ("weight decay 0.2", {"net__optimizer__weight_decay": 0.2}),
    # every run trains on all its rows (valid_fraction=0, _setup); make train holds out 10%
    "valid10": ("make train's own 10% validation split (net8's default): trains on 90% of its rows",
                {"net__valid_fraction": 0.1}),
}


def overrides(variant) -> tuple[str, dict]:
    """(what, set_params) of a variant name; "a+b" combines variants a and b."""
    whats, params = [], {}
    for part in variant.split("+"):
        what, changes = VARIANTS[part]
        whats.append(what)
        params.update(changes)
    return " + ".join(whats), params


def _setup(data_dir, variant, seed, epochs, split_seed, budget=None, precision=None):
    """(training data, train rows, held-out rows, unfitted net8 with the variant, what):
    the split and the estimator every run starts from (no validation split of its own)."""
    training = data.load_training(data_dir)
    train_rows, held_rows = grouped_holdout(training.X, 0.2, split_seed)
    model = configs.build("net8", epochs=epochs, seed=seed, verbose=0, valid_fraction=0,
                          budget=budget, precision=precision)
    what, changes = overrides(variant)
    model.set_params(**changes)
    return training, train_rows, held_rows, model, what


def run(data_dir, variant, seed, epochs=None, split_seed=0, budget=None, precision=None):
    training, train_rows, held_rows, model, what = _setup(data_dir, variant, seed, epochs,
                                                          split_seed, budget, precision)
    X, y = training.X, training.y
    start = time.perf_counter()
    model.fit(X[train_rows], y[train_rows])
    seconds = time.perf_counter() - start
    net = model.named_steps["net"]
    held = X[held_rows]
    views = flip_tta(model, shift=2).predict_views(held)    # views[0]: flip TTA alone
    predictions = {"plain": model.predict(held), "tta": views[0].astype(np.float32),
                   "tta_shift2": views.mean(axis=0).astype(np.float32)}
    return model, predictions, {
        "variant": _label(variant, budget), "what": what, "seed": seed, "budget_s": budget,
        **_machine_fields(),
        "epochs": len(net.history), "train_rows": len(train_rows), "held_rows": len(held_rows),
        "seconds": round(seconds, 1), "precision": net.precision_,
        **_score_fields(predictions, y[held_rows]),
        "data": training.fingerprint, "flip_axis": flip_axis_of(model),
    }


def _label(variant, budget, extra=""):
    """A run's variant as the results file names it: the budget, ``extra`` and an AVX2 cap."""
    return (variant + ("" if budget is None else f"/budget{budget:g}s") + extra
            + ("" if torch.backends.cpu.get_cpu_capability() != "AVX2" else "/avx2"))


def append_record(path, row, echo=True) -> None:
    """Append ``row`` to the JSONL file ``path`` as one line (and print it)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    if echo:
        print(json.dumps(row), flush=True)


def read_records(path) -> list[dict]:
    """Every row of the JSONL file ``path``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _machine_fields() -> dict:
    machine = provenance.machine()
    return {"cpu": machine["cpu"], "native_bf16": machine["native bf16"],
            "aten_capability": torch.backends.cpu.get_cpu_capability()}


def _score_fields(predictions, truth) -> dict:
    """Held-out RMSE and mean x error, plain, with flip TTA and (where predicted) with flip
    TTA over the 3x3 grid of 2-pixel shifts."""
    names = [n for n in ("plain", "tta", "tta_shift2") if n in predictions]
    fields = {}
    for name in names:
        key = "" if name == "plain" else f"_{name}"
        fields[f"rmse{key}_px"] = masked_rmse_px(truth, predictions[name])
        fields[f"bias_x{key}_px"] = float(np.nanmean(predictions[name][:, 0::2] - truth[:, 0::2]))
    return fields


def run_folds(data_dir, variant, folds, seed=0, epochs=None, split_seed=0):
    """A ``make cv KEEP=1``-style fold ensemble, fitted on the training rows of the split and
    scored on the held-out rows: the ensemble, with flip TTA, and each fold model alone."""
    training, train_rows, held_rows, template, what = _setup(data_dir, variant, seed, epochs,
                                                             split_seed)
    X, y = training.X, training.y
    start = time.perf_counter()
    ensemble = FoldEnsemble(template, cv=folds, random_state=seed).fit(X[train_rows], y[train_rows])
    seconds = time.perf_counter() - start
    held, truth = X[held_rows], y[held_rows]
    each = [masked_rmse_px(truth, flip_tta(m).predict(held)) for m in ensemble.estimators_]
    return {
        "variant": f"{variant}/folds{folds}", "what": f"{what}, {folds}-fold ensemble",
        "seed": seed, "epochs": len(ensemble.estimators_[0].named_steps["net"].history),
        "train_rows": len(train_rows), "held_rows": len(held_rows), "seconds": round(seconds, 1),
        "rmse_px": masked_rmse_px(truth, ensemble.predict(held)),
        "rmse_tta_px": masked_rmse_px(truth, flip_tta(ensemble).predict(held)),
        "fold_models_tta_px": each, "data": training.fingerprint,
        "flip_axis": flip_axis_of(ensemble),
    }


def run_seed_ensemble(data_dir, variant, seed, models, jobs, epochs=None, split_seed=0,
                      budget=None, precision=None, heads=None):
    """``make train MODELS=N``'s ensemble (ensemble.SeedEnsemble: seeds seed .. seed+N-1,
    ``jobs`` at a time, the budget for all of them), fitted on the training rows of the
    split and scored on the held-out rows: the ensemble, with flip TTA, and each net alone."""
    training, train_rows, held_rows, template, what = _setup(data_dir, variant, seed, epochs,
                                                             split_seed, None, precision)
    X, y = training.X, training.y
    ensemble = SeedEnsemble(template, seeds=models, n_jobs=jobs, heads=heads, budget=budget)
    start = time.perf_counter()
    ensemble.fit(X[train_rows], y[train_rows])
    seconds = time.perf_counter() - start
    plan = ensemble.plan_
    held, truth = X[held_rows], y[held_rows]
    each_plain = ensemble.predict_each(held)
    each_tta = np.stack([flip_tta(m).predict(held) for m in ensemble.estimators_])
    predictions = {"plain": each_plain.mean(axis=0), "tta": each_tta.mean(axis=0),
                   "members_plain": each_plain, "members_tta": each_tta}
    member_nets = [m.named_steps["net"] for m in ensemble.estimators_]
    return ensemble, predictions, {
        "variant": _label(variant, budget, f"/x{models}-jobs{plan['jobs']}"
                          + ("-heads-" + "-".join(heads) if heads else "")),
        "what": f"{what}, {models} seeds averaged"
                + (f", heads {', '.join(heads)} in turn" if heads else "")
                + f" ({plan['jobs']} at a time, "
                f"{plan['threads_per_job']} threads each)",
        "seed": seed, "seeds": plan["seeds"], "budget_s": budget, "plan": plan,
        **_machine_fields(),
        "epochs": max(len(n.history) for n in member_nets),
        "members_epochs": [len(n.history) for n in member_nets],
        "train_rows": len(train_rows), "held_rows": len(held_rows),
        "seconds": round(seconds, 1), "precision": member_nets[0].precision_,
        **_score_fields(predictions, truth),
        "members_tta_px": [masked_rmse_px(truth, p) for p in each_tta],
        "members_px": [masked_rmse_px(truth, p) for p in each_plain],
        "data": training.fingerprint, "flip_axis": flip_axis_of(ensemble),
    }


def tta_scores(model, held, truth, shift) -> dict:
    """A fitted model (one net8 or a SeedEnsemble) scored on the held-out rows with flip TTA
    and with flip TTA over a 3x3 grid of ``shift``-pixel shifts: the model and each of its
    nets alone (ensemble members are averaged as the ensemble averages them)."""
    members = getattr(model, "estimators_", [model])
    views = [flip_tta(m, shift=shift).predict_views(held) for m in members]  # [0]: flip alone
    row = {"tta_shift": shift}
    for name, each in (("tta", np.stack([v[0] for v in views])),
                       (f"tta_shift{shift}", np.stack([v.mean(axis=0) for v in views]))):
        together = each.mean(axis=0)
        row[f"rmse_{name}_px"] = masked_rmse_px(truth, together)
        row[f"members_{name}_px"] = [masked_rmse_px(truth, p) for p in each]
        row[f"bias_x_{name}_px"] = float(np.nanmean(together[:, 0::2] - truth[:, 0::2]))
    return row


def rescore(paths, data_dir, shift, out=None, split_seed=0) -> str:
    """Saved models (``--save-models``) scored again on the same held-out rows, with flip TTA
    and with the shift grid; one JSON line each appended to ``out``; a Markdown table."""
    training = data.load_training(data_dir)
    held_rows = grouped_holdout(training.X, 0.2, split_seed)[1]
    held, truth = training.X[held_rows], training.y[held_rows]
    lines = [f"| model | nets | each net, flip TTA (px) | each net, + shifts {shift} (px) | "
             f"flip TTA (px) | + shifts {shift} (px) | x bias, + shifts (px) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for path in paths:
        start = time.perf_counter()
        row = {"model": Path(path).name, **tta_scores(joblib.load(path), held, truth, shift),
               **_machine_fields(), "data": training.fingerprint,
               "held_rows": len(held_rows), "split_seed": split_seed}
        row["seconds"] = round(time.perf_counter() - start, 1)
        if out:
            append_record(out, row, echo=False)
        shifted = f"tta_shift{shift}"
        lines.append(f"| {row['model']} | {len(row['members_tta_px'])} | "
                     + ", ".join(f"{v:.3f}" for v in row["members_tta_px"]) + " | "
                     + ", ".join(f"{v:.3f}" for v in row[f"members_{shifted}_px"])
                     + f" | {row['rmse_tta_px']:.4f} | {row[f'rmse_{shifted}_px']:.4f} | "
                     f"{row[f'bias_x_{shifted}_px']:+.3f} |")
    return "\n".join(lines)


def npz_path(stem, variant, epochs, seed) -> str:
    """Where a run's held-out predictions are kept, beside the results file."""
    return f"{stem}-{variant.replace('/', '_')}-e{epochs}-s{seed}.npz"


def _runs(path):
    """(rows of a results file, its rows grouped by (variant, epochs))."""
    rows = read_records(path)
    groups = {}
    for r in rows:   # budgeted runs: one group whatever epochs each ran
        key = r["epochs"] if r.get("budget_s") is None else "budget"
        groups.setdefault((r["variant"], key), []).append(r)
    return rows, groups


def held_out_targets(data_dir, split_seed=0):
    training = data.load_training(data_dir)
    return training.y[grouped_holdout(training.X, 0.2, split_seed)[1]]


def ensembles(path, data_dir) -> str:
    """What averaging the runs of one variant buys: the mean of their held-out predictions
    (plain and flip-TTA), scored like one model, against the runs' own mean score."""
    rows, groups = _runs(path)
    y = held_out_targets(data_dir)
    stem = Path(path).with_suffix("")
    lines = ["| variant | epochs | models | mean of single models, TTA (px) | ensemble (px) | ensemble + TTA (px) | gain vs single + TTA | ensemble + shifts 2 (px) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:  # fold and seed ensembles: their own members are the singles
        members = r.get("fold_models_tta_px") or r.get("members_tta_px")
        if members:
            single = statistics.mean(members)
            epochs = r["epochs"] if r.get("budget_s") is None else "budget"
            lines.append(f"| {r['variant']} (seed {r['seed']}) | {epochs} | {len(members)} | "
                         f"{single:.3f} | {r['rmse_px']:.3f} | {r['rmse_tta_px']:.3f} | "
                         f"{100 * (r['rmse_tta_px'] / single - 1):+.1f}% | |")
    for (variant, epochs), rs in groups.items():
        if len(rs) < 2 or "fold_models_tta_px" in rs[0] or "members_tta_px" in rs[0]:
            continue
        paths = [npz_path(stem, variant, r["epochs"], r["seed"]) for r in rs]
        if not all(Path(p).exists() for p in paths):   # predictions not kept (not committed)
            lines.append(f"| {variant} | {epochs} | {len(rs)} | (held-out predictions not kept) "
                         "| | | | |")
            continue
        runs = [np.load(p) for p in paths]
        plain = masked_rmse_px(y, np.mean([p["plain"] for p in runs], axis=0))
        tta = masked_rmse_px(y, np.mean([p["tta"] for p in runs], axis=0))
        single = statistics.mean(r["rmse_tta_px"] for r in rs)
        shifted = (f"{masked_rmse_px(y, np.mean([p['tta_shift2'] for p in runs], axis=0)):.3f}"
                   if all("tta_shift2" in p for p in runs) else "")
        lines.append(f"| {variant} | {epochs} | {len(rs)} | {single:.3f} | {plain:.3f} | "
                     f"{tta:.3f} | {100 * (tta / single - 1):+.1f}% | {shifted} |")
    return "\n".join(lines)


def summary(path) -> str:
    _, groups = _runs(path)
    lines = ["| variant | what | epochs | seeds | held-out RMSE px (mean ± sd) | + flip TTA | min-max (TTA) | train s (mean) | x bias, TTA (px) | + shifts 2 (TTA_SHIFT=2) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (variant, epochs), rs in groups.items():
        plain = [r["rmse_px"] for r in rs]
        tta = [r["rmse_tta_px"] for r in rs]
        sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
        if epochs == "budget":
            epochs = "-".join(str(n) for n in sorted({r["epochs"] for r in rs}))
        lines.append(f"| {variant} | {rs[0]['what']} | {epochs} | {len(rs)} | "
                     f"{statistics.mean(plain):.3f} ± {sd(plain):.3f} | "
                     f"{statistics.mean(tta):.3f} ± {sd(tta):.3f} | "
                     f"{min(tta):.3f}-{max(tta):.3f} | "
                     f"{statistics.mean(r['seconds'] for r in rs):.0f} | "
                     + (f"{statistics.mean(r['bias_x_tta_px'] for r in rs):+.3f} |"
                        if all("bias_x_tta_px" in r for r in rs) else " |")
                     + (f" {statistics.mean(shifted):.3f} ± {sd(shifted):.3f} |"
                        if (shifted := [r.get("rmse_tta_shift2_px") for r in rs])
                        and None not in shifted else " |"))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/faces15")
    parser.add_argument("--out", default="benchmarks/net8-runs.jsonl")
    parser.add_argument("--variant", default="base", help="comma-separated names of VARIANTS")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="a time budget per run (the net plans its epochs)")
    parser.add_argument("--precision", default=None, help="auto (default), fp32 or bf16")
    parser.add_argument("--folds", type=int, default=0,
                        help="fit a k-fold ensemble of the variant instead of single models")
    parser.add_argument("--models", type=int, default=1,
                        help="fit make train MODELS=N's seed ensemble from each of --seeds "
                             "(seeds s .. s+N-1) instead of single models")
    parser.add_argument("--jobs", type=int, default=-1, help="with --models: nets at a time")
    parser.add_argument("--heads", default=None,
                        help="with --models: the nets' heads in turn (e.g. dense,softargmax)")
    parser.add_argument("--save-models", action="store_true",
                        help="also keep each fitted model, as .joblib beside its .npz")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--rescore", nargs="+", default=None, metavar="JOBLIB",
                        help="score models saved with --save-models again, with flip TTA and "
                             "with --tta-shift's grid; appends to --out, prints a table")
    parser.add_argument("--tta-shift", type=int, default=2, metavar="PX",
                        help="with --rescore: the shift grid's step (default 2)")
    parser.add_argument("--docs", default=None, metavar="MARKDOWN",
                        help="with --summary: also write the tables into this file's "
                             "--section (e.g. docs/RESULTS.md)")
    parser.add_argument("--section", default="net8-runs",
                        help="with --docs: the section's name (net8-runs, or net8-budget for "
                             "benchmarks/net8-budget-runs.jsonl)")
    args = parser.parse_args(argv)
    if args.rescore:
        print(rescore(args.rescore, args.data, args.tta_shift, args.out))
        return
    if args.summary:
        written = (f"Written by benchmarks/net8_runs.py: `python -m benchmarks.net8_runs --summary "
                   f"--out {args.out} --docs {args.docs} --section {args.section}`.")
        text = "\n".join([written, "", summary(args.out), "", ensembles(args.out, args.data)])
        print(text)
        if args.docs:
            write_section(args.docs, args.section, text)
        return
    if args.folds:
        row = run_folds(args.data, args.variant, args.folds, int(args.seeds.split(",")[0]),
                        args.epochs)
        append_record(args.out, row)
        return
    for variant in args.variant.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            if args.models > 1:
                model, predictions, row = run_seed_ensemble(
                    args.data, variant, seed, args.models, args.jobs, args.epochs,
                    budget=args.budget, precision=args.precision,
                    heads=args.heads.split(",") if args.heads else None)
            else:
                model, predictions, row = run(args.data, variant, seed, args.epochs,
                                              budget=args.budget, precision=args.precision)
            # held-out predictions, so that ensembles of runs can be scored afterwards
            stem = Path(args.out).with_suffix("")
            np.savez(npz_path(stem, row["variant"], row["epochs"], seed), **predictions)
            if args.save_models:
                joblib.dump(model, npz_path(stem, row["variant"], row["epochs"], seed)[:-4]
                            + ".joblib")
            append_record(args.out, row)


if __name__ == "__main__":
    main()
