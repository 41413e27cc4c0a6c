"""``RUN.COMPILE`` and ``RUN.BF16``: two levers on the training step, off by default.

Neither is on by default because neither paid within one of the SynthVeRi recipe's 900-iteration runs on
the 2-core CPU measured (``python benchmarks/train_step.py --case demo``, docs/STUDY.md, Performance); a
default would also have to keep the study's 3-seed rows within their spreads:

* ``RUN.COMPILE`` compiles the backbone in place with ``torch.compile`` (``nn.Module.compile``: the state
  dict keeps its keys, so checkpoints load either way). The head and the losses stay eager: they log
  to FastReID's event storage, which would break the graph. Inductor's kernels are cached in the user's
  cache folder (:func:`inductor_cache_dir`), never in the repository, unless ``TORCHINDUCTOR_CACHE_DIR``
  names another; the Softmax and VAL recipes share their backbone, so one run's kernels serve the other.
* ``RUN.BF16`` runs the training forward under bfloat16 autocast on the model's device (backward follows
  the forward's dtypes); evaluation stays in float32. On a CUDA device FastReID's ``SOLVER.AMP.ENABLED``
  (float16 with a gradient scaler) is the lever, and the two together are refused.
"""
import functools
import os

import torch

from ..errors import InvalidConfigError

__all__ = ["check_step_levers", "apply_step_levers", "inductor_cache_dir", "compile_backbone", "bf16_training_forward"]


def inductor_cache_dir():
    """``$XDG_CACHE_HOME/fastreid_val/inductor`` (``~/.cache/...`` when unset): where compiled kernels live."""
    return os.path.join(os.path.expanduser(os.getenv("XDG_CACHE_HOME") or "~/.cache"), "fastreid_val", "inductor")


def compile_backbone(model):
    """Compile ``model.backbone`` in place (its first forward compiles, later ones reuse)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", inductor_cache_dir())
    model.backbone.compile()
    return model


def bf16_training_forward(model):
    """Wrap ``model.forward`` so that in training mode it runs under bfloat16 autocast on ``model.device``;
    the module, its parameters and its state dict are unchanged (float32)."""
    forward = model.forward

    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not model.training:
            return forward(*args, **kwargs)
        with torch.autocast(device_type=torch.device(model.device).type, dtype=torch.bfloat16):
            return forward(*args, **kwargs)

    model.forward = run
    return model


def check_step_levers(cfg):
    """Refuse levers that cannot go together (called with the config, before anything is written)."""
    if cfg.RUN.BF16 and cfg.SOLVER.AMP.ENABLED:
        raise InvalidConfigError("RUN.BF16 True and SOLVER.AMP.ENABLED True are two mixed precisions: set one of "
                                 "them False (RUN.BF16: bfloat16 autocast, for CPUs; SOLVER.AMP: FastReID's float16 "
                                 "on CUDA).")


def apply_step_levers(cfg, model):
    """The levers ``cfg.RUN`` asks for, applied to a freshly built ``model``."""
    check_step_levers(cfg)
    if cfg.RUN.COMPILE:
        compile_backbone(model)
    if cfg.RUN.BF16:
        bf16_training_forward(model)
    return model
