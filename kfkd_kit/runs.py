"""Checkpoints and resume for `make train`: a run folder beside the model file.

Every epoch the run folder (``models/net1.run/``) gets the last state (weights, optimizer,
history) and, when the valid loss improved, the best one: skorch's ``Checkpoint``, written
so that a kill mid-write never spoils the previous checkpoint (``SlotCheckpoint``).
Running the same command again after the process died resumes from the last epoch
(skorch's ``LoadInitState``) and ends with the epochs it was asked for. A run folder made
with other settings or data is set aside, never resumed. The folder is removed once the
model file is written.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from skorch.callbacks import Checkpoint, LoadInitState
from skorch.utils import noop

from ._atomic import write_json

RUN_RECORD = "run.json"


class SlotCheckpoint(Checkpoint):
    """skorch's Checkpoint of weights, optimizer and history into ``root/<name>-a`` or
    ``root/<name>-b``, whichever does not hold the latest; then ``root/<name>.json`` is
    replaced atomically to point at it. A kill at any moment leaves a whole checkpoint.

    ``monitor`` as skorch's (None: every epoch; "valid_loss_best": when it improved).
    """

    def __init__(self, root="", name="last", monitor=None, sink=noop, **kwargs):
        super().__init__(monitor=monitor, dirname="", f_params="params.pt",
                         f_optimizer="optimizer.pt", f_criterion=None, f_history="history.json",
                         event_name=None, sink=sink, **kwargs)
        self.root = root
        self.name = name

    def initialize(self):
        Path(self.root).mkdir(parents=True, exist_ok=True)
        return super().initialize()

    @property
    def pointer(self) -> Path:
        return Path(self.root) / f"{self.name}.json"

    def saved(self) -> dict | None:
        """{"slot": folder, "epoch": epochs in its history}, or None before the first save."""
        try:
            record = json.loads(self.pointer.read_text())
        except (OSError, ValueError):
            return None
        return record if (Path(self.root) / record.get("slot", "")).is_dir() else None

    def use_saved(self) -> int:
        """Point skorch's loading at the latest checkpoint; returns its epoch (0: none)."""
        record = self.saved()
        if record is None:
            return 0
        self.dirname = str(Path(self.root) / record["slot"])
        return int(record["epoch"])

    def save_model(self, net):
        record = self.saved()
        slot = f"{self.name}-{'b' if record and record['slot'].endswith('-a') else 'a'}"
        self.dirname = str(Path(self.root) / slot)
        Path(self.dirname).mkdir(parents=True, exist_ok=True)
        self.failed_ = []
        super().save_model(net)
        if self.failed_:  # skorch carries on training; the pointer stays on the last whole one
            warnings.warn(f"checkpoint {self.name} of epoch {len(net.history)} not saved "
                          f"({self.failed_[0]}); {self.pointer} still names the previous one",
                          RuntimeWarning, stacklevel=2)
            return
        write_json(self.pointer, {"slot": slot, "epoch": len(net.history)})

    def _save_params(self, f, net, f_name, log_name):
        # skorch's own catches every error and only logs it
        try:
            net.save_params(**{f_name: f, "use_safetensors": self.use_safetensors})
        except Exception as exc:  # noqa: BLE001 - reported by save_model
            self.failed_.append(f"{log_name}: {type(exc).__name__}: {exc}")


class Resume(LoadInitState):
    """skorch's LoadInitState from a SlotCheckpoint's latest save, once, when training
    begins; ``net.resumed_epochs_`` says how many epochs were loaded (0: a fresh start),
    so the fit runs only the epochs that are left."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        net.resumed_epochs_ = 0
        if self.did_load_:
            return
        epochs = self.checkpoint.use_saved()
        if not epochs:           # nothing saved yet: a fresh start
            self.did_load_ = True
            return
        super().on_train_begin(net, X=X, y=y, **kwargs)
        net.resumed_epochs_ = epochs


def checkpoint_callbacks(run_dir, validation=True) -> tuple[list, list]:
    """(callbacks to put first, callbacks to put last) of a net that keeps its run in
    ``run_dir``: resume first, so that schedules begin where the run stopped; the
    checkpoints last, after every callback that writes into the history."""
    last = SlotCheckpoint(run_dir, "last")
    first = [("resume", Resume(last))]
    end = [("checkpoint_best", SlotCheckpoint(run_dir, "best", monitor="valid_loss_best"))] \
        if validation else []
    return first, end + [("checkpoint_last", last)]


def prepare(run_dir, record: dict, say=print) -> int:
    """Make ``run_dir`` ready for a run described by ``record`` (settings, data): keep it
    when it holds a checkpoint of the same run (returns its epoch), else start it afresh.
    A folder of another run is moved aside to ``<run_dir>.old``, not resumed."""
    run_dir = Path(run_dir)
    try:
        previous = json.loads((run_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        previous = None
    if previous == json.loads(json.dumps(record, default=str)):
        epoch = SlotCheckpoint(run_dir, "last").saved()
        if epoch:
            return int(epoch["epoch"])
    elif run_dir.exists():
        aside = run_dir.with_name(run_dir.name + ".old")
        shutil.rmtree(aside, ignore_errors=True)
        run_dir.rename(aside)
        say(f"{run_dir} holds a run with other settings or data: moved to {aside}, starting afresh")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN_RECORD, record)
    return 0


def best_state(run_dir) -> SlotCheckpoint | None:
    """The run's best checkpoint, pointed at, or None when there is none."""
    best = SlotCheckpoint(run_dir, "best")
    return best if best.use_saved() else None


def finish(run_dir) -> None:
    """The model file is written: the run's checkpoints are no longer needed."""
    shutil.rmtree(run_dir, ignore_errors=True)
