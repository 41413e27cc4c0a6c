"""Checks that a checkpoint fits the model before FastReID's Checkpointer loads it.

FastReID skips mismatching tensors with a warning; for a resumed VAL run that would silently start
the identity-viewpoint classifier from scratch. We refuse instead, saying what differs.
"""
import os
import tempfile

import torch
from fastreid.utils.checkpoint import Checkpointer

from ..errors import CheckpointMismatchError, CheckpointNotFoundError

__all__ = ["AtomicCheckpointer", "CheckpointMismatchError", "CheckpointNotFoundError", "check_checkpoint_compatible", "read_checkpoint_model"]


def read_checkpoint_model(path):
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or not a checkpoint
        raise CheckpointMismatchError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})") from e
    return ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt


def check_checkpoint_compatible(model, path):
    """Raise :class:`CheckpointMismatchError` if ``path`` was trained with another C, V or head."""
    if not str(path).endswith((".pth", ".pt")):
        return  # other formats (e.g. ImageNet weights for the backbone) are FastReID's business
    state = read_checkpoint_model(path)
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
        if key.endswith(".weight") and key.count(".") == 1 and hasattr(head, "num_viewpoints"):
            raise CheckpointMismatchError(
                f"checkpoint {path} has {got[0]} identity-viewpoint classes but this model has "
                f"{want[0]} = {head.num_identities} identities x V={head.num_viewpoints}: it was trained with "
                "another number of identities or MODEL.VAL.NUM_VIEWPOINTS.")
        raise CheckpointMismatchError(f"checkpoint {path}: {key} has shape {got}, this model expects {want} "
                                      "(another dataset, head or embedding size).")
    missing = [k for k in own if head_key(k) and k not in state]
    if missing and any(head_key(k) for k in state):
        raise CheckpointMismatchError(f"checkpoint {path} lacks {missing[:3]}: it was trained with another head.")


class AtomicCheckpointer(Checkpointer):
    """FastReID's ``Checkpointer`` whose files appear whole or not at all.

    A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed
    into place; only then is ``last_checkpoint`` rewritten (the same way). A run killed at any
    moment therefore leaves ``last_checkpoint`` naming a complete file.
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
        _atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename):
        _atomic_write(os.path.join(self.save_dir, "last_checkpoint"),
                      lambda f: f.write(last_filename_basename.encode()))


def _atomic_write(path, write):
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
