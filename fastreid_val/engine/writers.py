"""Event writing of ours, plugged into FastReID's trainer like its own (``HookBase``, ``EventWriter``).

* :class:`PeriodicWriter`: FastReID's hook without its duplicate writes. Upstream's ``after_step``
  writes every ``period`` iterations and at the last one, and its ``after_epoch`` writes the epoch's last
  iteration again (fastreid/engine/hooks.py:174-183): when an epoch ends on a written iteration (the
  last iteration always; with 50 iterations an epoch and a period of 20, every second epoch) the same
  console line, ``metrics.json`` record and TensorBoard point appear twice. Here each iteration is
  written once.
* :class:`ProgressWriter`: one JSON line per write (iteration, total, losses, speed, ETA) appended to
  ``RUN.PROGRESS_FILE``, which the demo's and the comparison's console read while a run trains.
"""
import json
import math

from fastreid.engine import hooks
from fastreid.utils.events import EventWriter, get_event_storage

__all__ = ["PeriodicWriter", "ProgressWriter"]


class PeriodicWriter(hooks.PeriodicWriter):
    """FastReID's ``PeriodicWriter`` that writes each iteration at most once."""

    def __init__(self, writers, period=20):
        super().__init__(writers, period)
        self._last_written = None

    def _write(self):
        # The storage's iteration: at ``after_epoch`` the trainer's has already moved on to the next
        # epoch's first (fastreid/engine/train_loop.py:147), the storage still holds the last one written.
        iteration = self.trainer.storage.iter
        if iteration == self._last_written:
            return
        self._last_written = iteration
        for writer in self._writers:
            writer.write()

    def after_step(self):
        if (self.trainer.iter + 1) % self._period == 0 or self.trainer.iter == self.trainer.max_iter - 1:
            self._write()

    def after_epoch(self):
        self._write()


class ProgressWriter(EventWriter):
    """Appends ``{"iteration", "max_iter", "epoch", "losses", "seconds_per_iter", "eta_seconds"}`` (one
    JSON object a line, flushed) to ``path``; iterations count from 1 and end at ``max_iter``."""

    def __init__(self, path, max_iter):
        self._path = path
        self._max_iter = max_iter
        self._file = open(path, "a")

    def write(self):
        storage = get_event_storage()
        if storage.iter >= self._max_iter:
            return  # after training (FastReID's printer does the same)
        # the losses and the speed as FastReID's console prints them (fastreid/utils/events.py:213-247)
        losses = {k: float(h.median(200)) for k, h in storage.histories().items() if "loss" in k}
        try:
            per_iter = float(storage.history("time").median(1000))
        except KeyError:  # the first iterations (the timer's warm-up)
            per_iter = None
        record = {"iteration": storage.iter + 1, "max_iter": self._max_iter, "epoch": storage.epoch,
                  "losses": {k: v for k, v in losses.items() if math.isfinite(v)},
                  "seconds_per_iter": per_iter,
                  "eta_seconds": per_iter * (self._max_iter - storage.iter - 1) if per_iter is not None else None}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self):
        self._file.close()
