"""``ViewpointAwareLoss``: the ``MODEL.VAL`` hyper-parameters around the pure losses of :mod:`.losses`.

``L_VA = w_P L_P + λ L_R`` (Eq. 6; the paper has w_P = 1), averaged over the heads that feed it.

Shape legend: N batch, C identities, V viewpoints per identity, d embedding dimension.
"""
import torch
from fastreid.config import configurable
from torch import nn

from ..config import validate_val_config
from ..errors import InvalidConfigError
from .losses import partition_loss, reunion_loss

__all__ = ["ViewpointAwareLoss"]


class ViewpointAwareLoss(nn.Module):
    """The Viewpoint-Aware Loss: partition loss ``L_P`` (Eq. 3, 4, 7) and reunion loss ``L_R`` (Eq. 5).

    Holds the hyper-parameters only (no parameters, no buffers, so checkpoints do not change); the
    math is in :func:`~fastreid_val.modeling.losses.partition_loss` and
    :func:`~fastreid_val.modeling.losses.reunion_loss`. Built from ``MODEL.VAL`` with
    ``ViewpointAwareLoss(cfg)``, or from keyword arguments, whose defaults are the paper's.

    Args:
        scale: γ, scale of the cosine logits (Eq. 3).
        margin: m, relaxation margin of the multi-decision boundary (Eq. 7).
        multi_boundary: Eq. 7 on ("L_P") or plain cosine φ = s ("L_P w/o MB").
        partition_weight: w_P, weight of ``L_P``.
        reunion_weight: λ, weight of ``L_R`` (Eq. 6). 0 turns the reunion term off: ``loss_reunion``
            is then neither computed nor returned (Table 3's "L_P" rows, Table 1's λ = 0).
        reunion_reduction: "sum" (Eq. 5 as written) or "mean" of ``L_R`` over identities.
    """

    @configurable
    def __init__(self, *, scale=48.0, margin=0.5, multi_boundary=True, partition_weight=1.0, reunion_weight=1.0,
                 reunion_reduction="sum"):
        super().__init__()
        self.scale = scale
        self.margin = margin
        self.multi_boundary = multi_boundary
        self.partition_weight = partition_weight
        self.reunion_weight = reunion_weight
        self.reunion_reduction = reunion_reduction

    @classmethod
    def from_config(cls, cfg):
        validate_val_config(cfg)
        v = cfg.MODEL.VAL
        return {"scale": v.SCALE, "margin": v.MARGIN, "multi_boundary": v.MULTI_BOUNDARY,
                "partition_weight": v.PARTITION_WEIGHT, "reunion_weight": v.REUNION_WEIGHT,
                "reunion_reduction": v.REUNION_REDUCTION}

    def forward(self, branch_outputs, identities, viewpoints=None):
        """``loss_partition`` (w_P L_P) and ``loss_reunion`` (λ L_R), each averaged over the branches.

        One branch for ``ViewpointBaseline``; MGN's eight branch heads for ``ViewpointMGN`` (as MGN
        averages its per-branch classification losses).

        Args:
            branch_outputs: the training outputs of each identity-viewpoint head, with ``cosine``
                [N, C, V] and ``unit_centers`` [C, V, d]
                (:class:`~fastreid_val.modeling.heads.IdentityViewpointHead`).
            identities: [N] int64 identity labels in ``0..C-1``.
            viewpoints: [N] int64 viewpoint labels in ``0..V-1``, -1 = unknown; ``None`` = all unknown.
        Returns:
            dict of scalar tensors; ``loss_reunion`` only when λ > 0.
        """
        for out in branch_outputs:
            if "cosine" not in out:
                raise InvalidConfigError("VAL needs a head that returns 'cosine' and 'unit_centers' "
                                         "(MODEL.HEADS.NAME: IdentityViewpointHead)")
        if viewpoints is None:
            viewpoints = torch.full_like(identities, -1)
        n = len(branch_outputs)
        losses = {"loss_partition": self.partition_weight / n * sum(
            partition_loss(o["cosine"], identities, viewpoints, self.scale, self.margin, self.multi_boundary)
            for o in branch_outputs)}
        if self.reunion_weight > 0:
            losses["loss_reunion"] = self.reunion_weight / n * sum(
                reunion_loss(o["unit_centers"], self.reunion_reduction, normalized=True) for o in branch_outputs)
        return losses

    def extra_repr(self):
        return (f"scale={self.scale}, margin={self.margin}, multi_boundary={self.multi_boundary}, "
                f"partition_weight={self.partition_weight}, reunion_weight={self.reunion_weight}, "
                f"reunion_reduction={self.reunion_reduction!r}")
