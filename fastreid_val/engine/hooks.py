"""Training hooks of ours, registered with FastReID's trainer like its own (``HookBase``)."""
import math

import torch
import torch.distributed as dist
from fastreid.engine import HookBase
from fastreid.utils import comm

from ..errors import NonFiniteLossError

__all__ = ["NonFiniteLossCheck"]


class NonFiniteLossCheck(HookBase):
    """Stops training at the first step whose loss has a NaN or infinite term, naming the term, the
    iteration and the last good checkpoint (:class:`~fastreid_val.errors.NonFiniteLossError`).

    The loss dict is the model's output, which ``SimpleTrainer.run_step`` keeps to itself
    (fastreid/engine/train_loop.py:241); on a non-finite loss its ``_write_metrics`` raises a
    multi-line ``FloatingPointError`` (train_loop.py:293) before the values reach the event storage,
    so ``after_step`` never sees them. The hook therefore watches the model's output with a PyTorch
    forward hook, for the first forward of each training step only (PreciseBN and evaluation run the
    model too). The check comes before the backward pass and the optimizer step: the weights never
    see a non-finite loss.
    """

    def __init__(self):
        self._armed = False
        self._handle = None

    def before_train(self):
        self._handle = self.trainer.model.register_forward_hook(self._check)

    def after_train(self):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def before_step(self):
        self._armed = True

    def _check(self, module, inputs, loss_dict):
        if not self._armed:
            return
        self._armed = False
        terms = torch.stack([v.detach().float() for v in loss_dict.values()])
        bad_here = (~torch.isfinite(terms)).any().to(torch.int32)
        bad_anywhere = bad_here.clone()
        if comm.get_world_size() > 1:
            dist.all_reduce(bad_anywhere, op=dist.ReduceOp.MAX)
        if not bool(bad_anywhere):  # one device sync per step for all terms and ranks
            return
        trainer = self.trainer
        if bool(bad_here):  # the names are looked up only when one is bad
            bad = {k: v.item() for k, v in loss_dict.items() if not math.isfinite(v.item())}
            what = f"loss term {', '.join(f'{k}={v}' for k, v in bad.items())}"
        else:
            what = "a non-finite loss term on another rank"
        raise NonFiniteLossError(
            f"{what} at iteration {trainer.iter} (epoch {trainer.epoch}); training stopped. The last good "
            f"checkpoint is kept: {trainer.checkpointer.get_checkpoint_file() or 'none saved yet'}")
