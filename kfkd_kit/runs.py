"""Checkpoints and resume for `make train`: a run folder beside the model file.

Every epoch the run folder (``models/net1.joblib.run/``) gets the last state (weights,
optimizer, history) and, when the valid loss improved, the best one: skorch's
``Checkpoint``, written while the next epoch trains and so that a kill mid-write never
spoils the previous checkpoint (``SlotCheckpoint``).
Running the same command again after the process died resumes from the last epoch
(skorch's ``LoadInitState``) and ends with the epochs it was asked for. A run folder made
with other settings or data is set aside, never resumed. The folder is removed once the
model file is written. ``stop_on_ctrl_c`` tells a fit that Ctrl-C ended (skorch ends it
quietly) from a finished one, for train and tune.
"""
from __future__ import annotations

import copy
import json
import shutil
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from skorch.callbacks import Checkpoint, LoadInitState
from skorch.utils import noop

from ._atomic import atomic_write, write_json

RUN_RECORD = "run.json"


class SlotCheckpoint(Checkpoint):
    """skorch's Checkpoint of weights, optimizer and history, kept in ``root/<name>-a`` or
    ``root/<name>-b``, whichever does not hold the latest; ``root/<name>.json`` names the
    latest and is replaced atomically once its files are whole, so a kill at any moment
    leaves a whole checkpoint.

    Every epoch ends with the last state and (when the valid loss improved) the best one
    in hand; they are written by a background thread while training goes on, as often as
    ``budget`` allows: a write that takes w seconds waits until w / budget seconds have
    passed since the one before (for net1 on a 2-core CPU, about every 4th epoch of
    0.08 s; for net8, every epoch). Training's end, Ctrl-C included, writes the final
    state. ``name="best"`` gives a checkpoint to load from only.
    """

    def __init__(self, root="", name="last", monitor=None, budget=0.03, sink=noop, **kwargs):
        # the best state is for using, not for carrying on: no optimizer state
        optimizer = None if name == "best" else "optimizer.pt"
        super().__init__(monitor=monitor, dirname="", f_params="params.pt", f_optimizer=optimizer,
                         f_criterion=None, f_history="history.json", event_name=None, sink=sink,
                         **kwargs)
        self.root = root
        self.name = name
        self.budget = budget

    def initialize(self):
        Path(self.root).mkdir(parents=True, exist_ok=True)
        self.writer_, self.failed_, self.best_ = None, [], None
        self.next_write_ = 0.0
        return super().initialize()

    def _pointer(self, name) -> Path:
        return Path(self.root) / f"{name}.json"

    @property
    def pointer(self) -> Path:
        return self._pointer(self.name)

    def saved(self, name=None) -> dict | None:
        """{"slot": folder, "epoch": epochs in its history}, or None before the first save."""
        try:
            record = json.loads(self._pointer(name or self.name).read_text())
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

    @staticmethod
    def _state(net, optimizer=True) -> dict:
        state = {"params.pt": {k: v.detach().clone() for k, v in net.module_.state_dict().items()},
                 "history.json": json.dumps(net.history.to_list())}
        if optimizer:
            state["optimizer.pt"] = copy.deepcopy(net.optimizer_.state_dict())
        return state

    def save_model(self, net, force=False, whole_epoch=True):
        if whole_epoch and net.history[-1].get("valid_loss_best"):
            self.best_ = (len(net.history), self._state(net, optimizer=False))
        if not force and (time.monotonic() < self.next_write_
                          or (self.writer_ is not None and self.writer_.is_alive())):
            return
        self.wait()
        best, self.best_ = self.best_, None
        last = (len(net.history), self._state(net)) if whole_epoch else None
        self.writer_ = threading.Thread(target=self._write, name=f"kfkd-checkpoint-{self.name}",
                                        args=(last, best), daemon=True)
        self.writer_.start()

    def _write(self, last, best):
        start = time.monotonic()
        try:
            for name, saved in (("last", last), ("best", best)):
                if saved is None:
                    continue
                epoch, state = saved
                record = self.saved(name)
                slot = Path(self.root) / f"{name}-{'b' if record and record['slot'].endswith('-a') else 'a'}"
                slot.mkdir(parents=True, exist_ok=True)
                for file, value in state.items():
                    if isinstance(value, str):
                        with atomic_write(slot / file, "w") as f:
                            f.write(value)
                    else:
                        with atomic_write(slot / file, "wb") as f:
                            torch.save(value, f)
                write_json(self._pointer(name), {"slot": slot.name, "epoch": epoch})
        except Exception as exc:  # noqa: BLE001 - reported by wait(); training carries on
            self.failed_.append(f"{type(exc).__name__}: {exc}")
        took = time.monotonic() - start
        self.next_write_ = start + took / self.budget

    def wait(self):
        """Until the checkpoint being written is on disk; warns about a failed one (whose
        pointer still names the previous, whole checkpoint)."""
        writer = getattr(self, "writer_", None)
        if writer is not None:
            writer.join()
            self.writer_ = None
        if getattr(self, "failed_", None):
            warnings.warn(f"checkpoint not saved ({self.failed_[0]}); {self.pointer} still "
                          "names the previous one", RuntimeWarning, stacklevel=2)
            self.failed_ = []

    def on_train_end(self, net, **kwargs):
        # the final state; after Ctrl-C mid-epoch, only the best one still in hand
        if len(net.history):
            self.save_model(net, force=True, whole_epoch="dur" in net.history[-1])
        self.wait()
        super().on_train_end(net, **kwargs)


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


def checkpoint_callbacks(run_dir) -> tuple[list, list]:
    """(callbacks to put first, callbacks to put last) of a net that keeps its run in
    ``run_dir``: resume first, so that schedules begin where the run stopped; the
    checkpoint last, after every callback that writes into the history."""
    last = SlotCheckpoint(run_dir, "last")
    return [("resume", Resume(SlotCheckpoint(run_dir, "last")))], [("checkpoint", last)]


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


@contextmanager
def stop_on_ctrl_c():
    """Yields a list that holds True once Ctrl-C stopped the block. skorch ends a fit
    quietly on KeyboardInterrupt; this tells such an end from a finished one."""
    interrupted = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum, frame):
        interrupted.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    except KeyboardInterrupt:
        interrupted.append(True)
    finally:
        signal.signal(signal.SIGINT, previous)
