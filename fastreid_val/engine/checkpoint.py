"""Checks that a checkpoint fits the model before FastReID's Checkpointer loads it.

FastReID skips mismatching tensors with a warning; for a resumed VAL run that would silently start
the identity-viewpoint classifier from scratch. We refuse instead, saying what differs.
"""
import os

import torch

__all__ = ["CheckpointMismatchError", "check_checkpoint_compatible", "read_checkpoint_model"]


class CheckpointMismatchError(RuntimeError):
    pass


def read_checkpoint_model(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
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
    heads = model.heads
    for key, tensor in own.items():
        if key not in state or not key.startswith("heads.") or state[key].shape == tensor.shape:
            continue
        got, want = tuple(state[key].shape), tuple(tensor.shape)
        if key == "heads.weight" and hasattr(heads, "num_viewpoints"):
            v = heads.num_viewpoints
            raise CheckpointMismatchError(
                f"checkpoint {path} has {got[0]} identity-viewpoint classes but this model has "
                f"{want[0]} = {heads.num_identities} identities x V={v}: it was trained with another "
                "number of identities or MODEL.VAL.NUM_VIEWPOINTS.")
        raise CheckpointMismatchError(f"checkpoint {path}: {key} has shape {got}, this model expects {want} "
                                      "(another dataset, head or embedding size).")
    missing = [k for k in own if k.startswith("heads.") and k not in state]
    if missing and any(k.startswith("heads.") for k in state):
        raise CheckpointMismatchError(f"checkpoint {path} lacks {missing[:3]}: it was trained with another head.")
