"""Checkpoints and resume for `make train`: a run folder beside the model file.

Every epoch the run folder (``models/net1.joblib.run/``) gets the last state (weights,
optimizer, history, and ``run.pt``: the rest of what the next epoch depends on, see
``run_state``) and, when the valid loss improved, the best one: skorch's ``Checkpoint``,
written while the next epoch trains and so that a kill mid-write never spoils the previous
checkpoint (``SlotCheckpoint``).
Running the same command again after the process died resumes from the last epoch
(skorch's ``LoadInitState``, then ``restore_run_state``) and ends with the epochs it was
asked for: on the CPU in fp32, with the very weights and predictions of the run that was
never stopped. A run folder made with other settings or data is set aside, never resumed.
The folder is removed once the model file is written. ``stop_on_ctrl_c`` tells a fit
that Ctrl-C ended (skorch ends it quietly) from a finished one, for train and tune.
"""
from __future__ import annotations

import copy
import json
import random
import shutil
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from skorch.callbacks import Checkpoint, LoadInitState, PassthroughScoring
from skorch.callbacks.scoring import ScoringBase
from skorch.utils import noop

from .atomic import atomic_write, write_json

RUN_RECORD = "run.json"
RUN_STATE = "run.pt"     # in a "last" slot, beside skorch's files: see run_state


# -- what a run needs beyond weights, optimizer and history -----------------------------------
def run_state(net) -> dict:
    """Everything beyond the weights, the optimizer and the history that the next epoch of
    ``net``'s fit depends on, taken between epochs:

    - every random generator a fit draws from: torch's (batch order, flips, affine and
      intensity augmentation, dropout; CUDA's too once it is in use), numpy's and Python's;
    - each callback's ``run_state()`` (the weight average, early stopping's counters and
      best weights) and the best score of skorch's scoring callbacks (``valid_loss_best``);
    - what a time budget planned (``budget_plan_``).

    The learning-rate schedules need nothing more: where they are follows from the history
    (batches run, planned epochs). Plain values and tensors only, for
    ``torch.load(weights_only=True)``.
    """
    callbacks = {}
    for name, callback in getattr(net, "callbacks_", []):
        if hasattr(callback, "run_state"):
            state = callback.run_state()
        elif (isinstance(callback, (PassthroughScoring, ScoringBase))
              and hasattr(callback, "best_score_")):
            state = {"best_score_": float(callback.best_score_)}
        else:
            state = None
        if state is not None:
            callbacks[name] = state
    return {"rng": _rng_states(), "callbacks": callbacks,
            "net": {"budget_plan_": getattr(net, "budget_plan_", None)}}


def restore_run_state(net, state: dict) -> None:
    """Put back what ``run_state`` took: generators, callbacks and the budget's plan."""
    _set_rng_states(state["rng"])
    saved = state["callbacks"]
    for name, callback in net.callbacks_:
        if name not in saved:
            continue
        if hasattr(callback, "restore_run_state"):
            callback.restore_run_state(net, saved[name])
        else:
            for key, value in saved[name].items():
                setattr(callback, key, value)
    _restore_net_state(net, state)


def _restore_net_state(net, state: dict) -> None:
    for key, value in state["net"].items():
        if value is not None:
            setattr(net, key, value)


def _rng_states() -> dict:
    numpy = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    states = {"torch": torch.get_rng_state(),
              "numpy": {"bit_generator": numpy["bit_generator"],
                        "key": numpy["state"]["key"].tolist(), "pos": int(numpy["state"]["pos"]),
                        "has_gauss": int(numpy["has_gauss"]), "gauss": float(numpy["gauss"])},
              "python": {"version": version, "internal": list(internal), "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state({"bit_generator": numpy["bit_generator"],
                         "state": {"key": np.array(numpy["key"], dtype=np.uint32),
                                   "pos": numpy["pos"]},
                         "has_gauss": numpy["has_gauss"], "gauss": numpy["gauss"]})
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


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
    state: the state of the last whole epoch (one whose callbacks all ran), taken before
    any callback changes the net at the end (``Resume`` has it saved first; alone, the
    checkpoint saves it when its own turn comes). The last state holds ``run_state`` too.
    ``name="best"`` gives a checkpoint to load from only.
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
        self.epoch_done_, self.final_saved_ = 0, False
        return super().initialize()

    def on_train_begin(self, net, **kwargs):
        # epochs loaded by Resume count as whole
        self.epoch_done_, self.final_saved_ = len(net.history), False
        super().on_train_begin(net, **kwargs)

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        self.epoch_done_ = len(net.history)   # every callback before this one has run

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

    def run_state(self) -> dict | None:
        """The saved ``run_state`` of the checkpoint pointed at (``use_saved``), or None
        when its slot has none (a run folder written before checkpoints kept it)."""
        try:
            return torch.load(Path(self.dirname) / RUN_STATE, weights_only=True)
        except FileNotFoundError:
            return None

    @staticmethod
    def _state(net, optimizer=True) -> dict:
        state = {"params.pt": {k: v.detach().clone() for k, v in net.module_.state_dict().items()},
                 "history.json": json.dumps(net.history.to_list())}
        if optimizer:  # the state to carry on from
            state["optimizer.pt"] = copy.deepcopy(net.optimizer_.state_dict())
            state[RUN_STATE] = run_state(net)
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
                                        args=(last, best))
        # not a daemon: a process that ends mid-write (Ctrl-C while a fit ends) finishes
        # the write first; a daemon thread killed inside torch.save aborts the interpreter
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

    def save_final(self, net):
        """Training ended: write the final state, once. The last state only when the latest
        epoch was whole (after Ctrl-C mid-epoch, or early stopping's stop, only the best one
        still in hand: a resumed run trains that epoch again)."""
        if self.final_saved_:
            return
        self.final_saved_ = True
        if len(net.history):
            self.save_model(net, force=True, whole_epoch=self.epoch_done_ == len(net.history))

    def on_train_end(self, net, **kwargs):
        self.save_final(net)
        self.wait()
        super().on_train_end(net, **kwargs)


class Resume(LoadInitState):
    """skorch's LoadInitState from a SlotCheckpoint's latest save, once, when training
    begins; ``net.resumed_epochs_`` says how many epochs were loaded (0: a fresh start),
    so the fit runs only the epochs that are left.

    The rest of the saved run (``run_state``) goes back when the first epoch begins, after
    every callback has set itself up in ``on_train_begin`` (the weight average, early
    stopping) and right before the first batch is drawn; or at the end, when no epoch was
    left. What a time budget planned goes back at once (``budget_plan_``, and the
    epochs the run was planned for as ``planned_epochs_``), so that the one-cycle schedule,
    set up next, spans the planned epochs.

    Put first (``checkpoint_callbacks`` does): when training ends it has the run's
    "last" SlotCheckpoint save the final state before a later callback changes the net
    (the weight average put in, early stopping's best weights loaded).
    """

    def initialize(self):
        self.pending_ = None
        return super().initialize()

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
        self.pending_ = self.checkpoint.run_state()
        if self.pending_ is not None:
            _restore_net_state(net, self.pending_)
        net.planned_epochs_ = resumed_plan(net.history, net.max_epochs)

    def _restore(self, net):
        pending, self.pending_ = self.pending_, None
        if pending is not None:
            restore_run_state(net, pending)

    def on_epoch_begin(self, net, **kwargs):
        self._restore(net)

    def on_train_end(self, net, **kwargs):
        self._restore(net)
        for _, callback in net.callbacks_:
            if (isinstance(callback, SlotCheckpoint) and callback.name == "last"
                    and Path(callback.root) == Path(self.checkpoint.root)):
                callback.save_final(net)


def resumed_plan(history, max_epochs) -> int:
    """The epochs a run resumed from ``history`` was planned for: what its time budget
    chose (the history's ``planned_epochs``, see net/budget.py), or ``max_epochs``."""
    planned = [row.get("planned_epochs") for row in history]
    return planned[-1] if planned and planned[-1] else max_epochs


def checkpoint_callbacks(run_dir) -> tuple[list, list]:
    """(callbacks to put first, callbacks to put last) of a net that keeps its run in
    ``run_dir``: resume first, so that schedules begin where the run stopped and the final
    state is saved before other callbacks' ends change the net; the checkpoint last, after
    every callback that writes into the history or keeps a ``run_state``."""
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
