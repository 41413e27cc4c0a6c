"""Reading a PyTorch file a user hands us without running any code it carries.

A ``.pth`` file is a pickle: unpickling it may call any function its author named (``exec``,
``os.system`` ...) before anything of ours looks at what it holds. Every PyTorch file this project
reads from a user — a checkpoint for ``--eval-only``, ``--resume``, ``MODEL.WEIGHTS``, export,
search and the labeller, ImageNet weights — goes through :func:`load_weights_file`, which unpickles
with torch's restricted unpickler (``weights_only=True``): tensors, numbers, strings, containers and
the few globals of :data:`ALLOWED_GLOBALS`, nothing else. A file that needs anything more is refused
with :class:`~fastreid_val.errors.UnsafeModelFileError`, naming what it wanted to import; nothing of
it has run. ``weights_only=True`` is passed explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot
turn it off.

What a FastReID checkpoint holds under torch 2.x (``Checkpointer.save``, and the project's
:class:`~fastreid_val.engine.checkpoint.AtomicCheckpointer`): ``model`` (a state dict of tensors),
``optimizer`` and the schedulers' state dicts (``lr_sched``, ``warmup_sched``: numbers, strings,
lists), ``epoch`` and ``metric`` (numbers). All of that is accepted by the restricted unpickler as it
is. The only globals allowed beyond it are NumPy's arrays, scalars and dtypes (with the dtype classes of
``numpy.dtypes``): FastReID's loader converts NumPy arrays in a checkpoint's model state
(``Checkpointer._convert_ndarray_to_tensor``), and a checkpoint written by an older FastReID or NumPy
may hold NumPy numbers (its ``metric``). They are allowed under NumPy 2's module names and under the
``numpy.core`` names older files use. Rebuilding them creates arrays and numbers only; the elements of
an object array are unpickled by the same restricted unpickler.
"""
import os
import pickle
import re

import numpy as np
import torch

from .errors import CheckpointMismatchError, CheckpointNotFoundError, UnsafeModelFileError

__all__ = ["ALLOWED_GLOBALS", "load_weights_file", "UnsafeModelFileError"]


def _numpy_globals():
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    out = [np.ndarray, np.dtype]
    # The dtype classes (numpy.dtypes.Float64DType ...): a pickled dtype is rebuilt as an instance of one.
    out += [c for c in vars(np.dtypes).values() if isinstance(c, type) and issubclass(c, np.dtype)]
    for name in ("scalar", "_reconstruct"):
        fn = getattr(multiarray, name)
        out += [(fn, f"numpy._core.multiarray.{name}"), (fn, f"numpy.core.multiarray.{name}")]
    return out


ALLOWED_GLOBALS = _numpy_globals()

# How torch's restricted unpickler names a global it refuses: "Unsupported global: GLOBAL builtins.exec",
# or, for a module it blocks outright, "unsupported GLOBAL posix.system whose module posix is blocked".
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
# The sentences torch wraps every refusal in (advice to load the file unrestricted), never shown.
_ADVICE = ("Weights only load failed", "weights_only", "Check the documentation", "Please file an issue")


def load_weights_file(path, what="checkpoint"):
    """The object in the PyTorch file ``path`` (on the CPU), read without running code.

    ``what`` names the file in messages ("checkpoint", "ImageNet weights", ...).

    Raises:
        CheckpointNotFoundError: ``path`` is not a file.
        UnsafeModelFileError: the file would import something beyond tensors, numbers, strings,
            containers and :data:`ALLOWED_GLOBALS` (the message names it); nothing of it ran.
        CheckpointMismatchError: the file is truncated or not a PyTorch file.
    """
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"{what} {path} does not exist")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        wants = _unsafe_globals(path, e)
        if not wants:  # not a PyTorch file, or an instruction the restricted unpickler does not read
            raise CheckpointMismatchError(f"{what} {path} cannot be read (UnpicklingError: {_refusal(e)})") from None
        raise UnsafeModelFileError(
            f"{what} {path} was refused: loading it would import {wants}, which can run code "
            "hidden in the file; nothing of it was run. A model file may hold only tensors, numbers, strings and "
            "containers: ask its author for the model's state dict saved alone "
            "(torch.save({'model': model.state_dict()}, path)).") from None
    except Exception as e:  # truncated, not a PyTorch file, an HTML page saved as .pth
        raise CheckpointMismatchError(f"{what} {path} cannot be read ({type(e).__name__}: {_refusal(e)})") from None


def _unsafe_globals(path, error):
    """What the file wants to import beyond :data:`ALLOWED_GLOBALS` ("" when nothing): every such global
    of a zip-format file (listed without unpickling), else the one the refusal names."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # the legacy (non-zip) format cannot be listed
        names = []
    allowed = {g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS}
    names = [n for n in names if n not in allowed] or _REFUSED_GLOBAL.findall(str(error))[:1]
    return ", ".join(names)


def _refusal(error):
    """The reason of a refusal or read error, without the advice torch wraps around it: the restricted
    unpickler's reason, else the first line that is not advice."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not any(a in line for a in _ADVICE)]
    return (reasons or ["not a file torch.load reads"])[0][:200]
