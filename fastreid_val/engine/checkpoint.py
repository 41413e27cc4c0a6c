"""Checkpoints: read without running code, checked against the model before FastReID loads them,
written whole or not at all.

FastReID skips mismatching tensors with a warning; for a resumed VAL run that would silently start
the identity-viewpoint classifier from scratch. We refuse instead, saying what differs. Every read
goes through :func:`fastreid_val.weights_file.load_weights_file` (no pickled code runs).
"""
import os

import torch
from fastreid.utils.checkpoint import Checkpointer

from ..atomic import atomic_write
from ..errors import CheckpointMismatchError, CheckpointNotFoundError
from ..weights_file import load_weights_file

__all__ = ["AtomicCheckpointer", "CheckpointMismatchError", "CheckpointNotFoundError",
           "check_checkpoint_compatible", "check_checkpoint_covers_model", "read_checkpoint_model"]


def read_checkpoint_model(path):
    """The model state dict of the checkpoint ``path`` (its ``model`` entry, or the file itself when it
    is a bare state dict), read without running code (:func:`~fastreid_val.weights_file.load_weights_file`)."""
    ckpt = load_weights_file(path, "checkpoint")
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def check_checkpoint_compatible(model, path, state=None):
    """Raise :class:`CheckpointMismatchError` if ``path`` was trained with another C, V or head.

    ``state``: the checkpoint's model state when already read (:func:`read_checkpoint_model`).
    """
    if not str(path).endswith((".pth", ".pt")):
        return  # other formats (e.g. ImageNet weights for the backbone) are FastReID's business
    state = read_checkpoint_model(path) if state is None else state
    model = getattr(model, "module", model)
    own = model.state_dict()
    # Baseline's ``heads``; MGN's ``b1_head`` ... ``b33_head``.
    heads = {name: m for name, m in model.named_children() if name == "heads" or name.endswith("_head")}

    def head_key(key):
        return key.split(".", 1)[0] in heads

    for key, tensor in own.items():
        if key not in state or not head_key(key) or state[key].shape == tensor.shape:
            continue
        got, want = tuple(state[key].shape), tuple(tensor.shape)
        head = heads[key.split(".", 1)[0]]
        if key.endswith(".weight") and key.count(".") == 1 and hasattr(head, "num_viewpoints") and got[0] != want[0]:
            raise CheckpointMismatchError(
                f"checkpoint {path} has {got[0]} identity-viewpoint classes but this model has "
                f"{want[0]} = {head.num_identities} identities x V={head.num_viewpoints}: it was trained with "
                "another number of identities or MODEL.VAL.NUM_VIEWPOINTS.")
        raise CheckpointMismatchError(f"checkpoint {path}: {key} has shape {got}, this model expects {want} "
                                      "(another dataset, head or embedding size).")
    missing = [k for k in own if head_key(k) and k not in state]
    if missing and any(head_key(k) for k in state):
        raise CheckpointMismatchError(f"checkpoint {path} lacks {missing[:3]}: it was trained with another head.")


def check_checkpoint_covers_model(model, path, state, config_hint=""):
    """For inference: every tensor of ``model`` must come from the checkpoint, with its shape.

    FastReID's ``Checkpointer`` loads what matches and only warns about the rest, so a checkpoint of
    another backbone would give a randomly initialised model. ``state``: the checkpoint's model
    state; keys of a multi-GPU run (``module.`` prefix) are compared without the prefix, as the
    ``Checkpointer`` loads them. ``config_hint`` names the config in the message.
    """
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    own = getattr(model, "module", model).state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    if not (missing or unexpected or wrong):
        return
    if not (missing or unexpected):  # same architecture: say which of C, V or the head differs
        check_checkpoint_compatible(model, path, state)
    parts = [f"{len(missing)} of the model's tensors are missing (e.g. {missing[0]})" if missing else "",
             f"{len(unexpected)} are not in the model (e.g. {unexpected[0]})" if unexpected else "",
             f"{len(wrong)} have another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} vs "
             f"{tuple(own[wrong[0]].shape)})" if wrong else ""]
    raise CheckpointMismatchError(
        f"checkpoint {path} does not fit the model of {config_hint or 'this config'}: "
        f"{'; '.join(p for p in parts if p)}. Give the config the checkpoint was trained with.")


class AtomicCheckpointer(Checkpointer):
    """FastReID's ``Checkpointer`` whose files appear whole or not at all, and are read without running code.

    A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed
    into place; only then is ``last_checkpoint`` rewritten (the same way). A run killed at any
    moment therefore leaves ``last_checkpoint`` naming a complete file.

    ``Checkpointer._load_file`` (``fastreid/utils/checkpoint.py:216``), FastReID's extension point for
    reading a file, calls ``torch.load`` without ``weights_only``: it is replaced by
    :func:`~fastreid_val.weights_file.load_weights_file`, so ``--resume``, ``MODEL.WEIGHTS`` and
    ``--eval-only`` refuse a file that would run code, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says.
    """

    @classmethod
    def replacing(cls, checkpointer):
        """An atomic checkpointer over the same model, folder and checkpointables as ``checkpointer``."""
        return cls(checkpointer.model, checkpointer.save_dir, save_to_disk=checkpointer.save_to_disk,
                   **checkpointer.checkpointables)

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def _load_file(self, f):
        return load_weights_file(f, "checkpoint")

    def tag_last_checkpoint(self, last_filename_basename):
        atomic_write(os.path.join(self.save_dir, "last_checkpoint"),
                     lambda f: f.write(last_filename_basename.encode()))
