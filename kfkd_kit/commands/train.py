"""`kfkd train`: the budget's recipe (recipes.py), the estimator it builds, then
training.fit_and_save, then the learning curves and test predictions as PNGs."""
from __future__ import annotations

from pathlib import Path

from .. import configs, data
from ..net.nested import histories
from ..training import fit_and_save, run_dir_of, with_options
from . import _options, _plots as plots
from ._shared import origin_of


def train(estimator, data_dir="data", model_path=None, name="custom", description="",
          say=print, params_file=None, recipe=None) -> dict:
    """Fit ``estimator`` on the training data in ``data_dir``; save model, JSON and PNGs
    (training.fit_and_save says how). Returns the JSON's record."""
    given = configs.load_params(params_file) if params_file else None  # read now, not after hours
    folder = data.resolve_data_dir(data_dir, say, origin_of(estimator))
    training = data.load_training(folder)
    model_path = Path(model_path or f"models/{name}.joblib")
    metadata, interrupted = fit_and_save(estimator, training, model_path, name=name,
                                         description=description, say=say,
                                         params_file=params_file, params_given=given,
                                         recipe=recipe)
    figures = write_figures(estimator, folder, model_path, title=name)
    metadata["figures"] = [str(p) for p in figures]
    say(f"figures: {', '.join(metadata['figures'])}")
    rmse = metadata["metrics"]["valid_rmse_px"]
    shown = "n/a (no validation split)" if rmse is None else f"{rmse:.3f} px"
    if interrupted:
        say(f"interrupted: the best model so far (valid RMSE {shown}) is saved to {model_path}; "
            f"run the same command to resume from {run_dir_of(model_path)}")
    else:
        say(f"valid RMSE {shown}; model saved to {model_path}")
    return metadata


def write_figures(model, data_folder, model_path, title="") -> list[Path]:
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    figures = [plots.learning_curves(histories(model), f"{stem}-learning-curves.png", title)]
    if data.find_file(data_folder, "test") is not None:
        test = data.load_test(data_folder)
        sample = test.X[:16]
        figures.append(plots.prediction_grid(sample, model.predict(sample),
                                             f"{stem}-test-predictions.png",
                                             f"{title}: test predictions", origin_of(model)))
    return figures


def add_parser(sub):
    p = _options.command_parser(sub, "train")
    _options.add_common(p, verbose=1)
    _options.add_model(p, "where the model goes (default: models/<net>.joblib)", default=None)
    p.add_argument("--quiet", dest="verbose", action="store_const", const=0, help="no per-epoch table")
    _options.add_recipe(p)
    p.add_argument("--pseudo-labels", type=_options.weight_fraction, default=None, metavar="W",
                   help="then train again on the test images too, labelled by the first model "
                        "where its flip and shift views agree, each such row of weight W (1, "
                        "1/2, 1/3, ...; meta/pseudo.py); a --budget is for both fits "
                        "(default: off)")
    p.add_argument("--labeller-bias", action="store_true",
                   help="add each labelling group's measured offset (rows labelling 4 keypoints "
                        "against rows labelling 15; meta/labellers.py); submit predicts each "
                        "test image in its group's convention (default: off)")
    p.set_defaults(func=run)


def run(args):
    plan = _options.recipe_plan(args)
    print(plan.why)
    # with pseudo-labels the budget is for both fits, shared out by meta/pseudo.py
    estimator = _options.recipe_estimator(args, plan,
                                          budget=None if args.pseudo_labels else args.budget)
    estimator = with_options(estimator, args.data, args.pseudo_labels, args.labeller_bias,
                             budget=args.budget)
    metadata = train(estimator, data_dir=args.data, model_path=args.model,
                     name=args.net, description=configs.get_config(args.net).description,
                     params_file=args.params, recipe=plan.record())
    return 130 if metadata["metrics"]["interrupted"] else 0  # Ctrl-C: saved, but not finished
