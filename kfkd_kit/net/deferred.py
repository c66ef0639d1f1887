"""Batch losses read once per epoch instead of once per batch: skorch calls
``loss.item()`` after every batch, which on CUDA stalls the CPU until the GPU has finished.
Here the history gets each batch's loss as a device tensor, and ``PendingLosses.flush``
turns them into floats in one sync at the end of the epoch (the training pass's and the
validation pass's together). fastpath.py's ``FastTrainer`` and ``KeypointNet``'s
validation pass use it."""
from __future__ import annotations

import torch


class PendingLosses:
    """Batch losses recorded in the history as device tensors, made floats in one sync."""

    def __init__(self):
        self.items = []

    def add(self, rows, key, values):
        if rows:
            self.items.append((rows, key, values))

    def flush(self):
        if not self.items:
            return
        values = torch.cat([v.detach().reshape(-1).float() for _, _, v in self.items]).tolist()
        i = 0
        for rows, key, _ in self.items:
            for row in rows:
                row[key] = values[i]
                i += 1
        self.items = []


def run_deferred_epoch(net, iterator, training, prefix, step_fn, pending=None, **fit_params):
    """skorch's run_single_epoch, but batch losses are turned into floats once, at the end
    (together with ``pending`` ones, e.g. the training pass's).

    skorch calls ``loss.item()`` after every batch, which on CUDA stalls the CPU until the
    GPU has finished; here the CPU keeps queueing work.
    """
    pending = pending if pending is not None else PendingLosses()
    if iterator is not None:
        batches = net.history[-1]["batches"]
        first = len(batches)
        losses = []
        for batch in iterator:
            net.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            loss = step["loss"].detach()
            losses.append(loss.float().reshape(1))
            net.history.record_batch(prefix + "_loss", loss)
            net.history.record_batch(prefix + "_batch_size", len(batch[0]))
            net.notify("on_batch_end", batch=batch, training=training, **step)
        net.history.record(prefix + "_batch_count", len(losses))
        if losses:
            pending.add(batches[first:first + len(losses)], prefix + "_loss", torch.cat(losses))
    pending.flush()
