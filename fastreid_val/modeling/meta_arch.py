"""``ViewpointBaseline``: FastReID's ``Baseline`` trained with the Viewpoint-Aware Loss (Eq. 6).

``L = w_P L_P + λ L_R + (FastReID's stock losses named in MODEL.LOSSES.NAME, on identity targets)``
"""
import torch
from fastreid.config import configurable
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY, Baseline
from fastreid.utils.events import get_event_storage

from ..errors import InvalidConfigError
from .losses import assign_viewpoints, partition_loss, reunion_loss

__all__ = ["ViewpointAwareMixin", "ViewpointBaseline", "viewpoint_aware_losses", "val_kwargs_from_config"]


class ViewpointAwareMixin:
    """What every VAL meta-architecture adds to its FastReID parent: the ``MODEL.VAL`` settings
    (``val_kwargs``) and the batch's viewpoints. Put it before the parent class."""

    @configurable
    def __init__(self, *, val_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.val_kwargs = val_kwargs

    @classmethod
    def from_config(cls, cfg):
        args = super().from_config(cfg)
        args["val_kwargs"] = val_kwargs_from_config(cfg)
        return args

    @staticmethod
    def batch_viewpoints(batched_inputs, device, unlabelled=None):
        """``viewpoints`` [N] of a training batch on ``device``: -1 (unknown) where the batch has none,
        and everywhere when its targets are negative (FastReID's PreciseBN convention for "no labels";
        pass ``unlabelled`` when already known, to spare a device sync)."""
        targets = batched_inputs["targets"]
        viewpoints = batched_inputs.get("viewpoints")
        if unlabelled is None:
            unlabelled = bool(targets.sum() < 0)
        if viewpoints is None or unlabelled:
            return torch.full(targets.shape, -1, dtype=torch.long, device=device)
        return viewpoints.to(device)


@META_ARCH_REGISTRY.register()
class ViewpointBaseline(ViewpointAwareMixin, Baseline):
    """Adds ``loss_partition`` and ``loss_reunion`` to the losses of FastReID's ``Baseline``.

    Expects a head that returns ``cosine`` [N, C, V] and ``centers`` [C, V, d] in training
    (:class:`~fastreid_val.modeling.heads.IdentityViewpointHead`). Reads ``viewpoints`` [N] from the
    batch (-1 = unknown; all unknown when the batch has none). Stock losses (``CrossEntropyLoss``,
    ``TripletLoss``, ``CircleLoss``, ``Cosface``) stay available with identity targets, so VAL can be
    swapped into recipes such as SBS (classification + triplet).
    """

    def forward(self, batched_inputs):
        if not self.training:
            return super().forward(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images)
        assert "targets" in batched_inputs, "Identity annotations are missing in training!"
        targets = batched_inputs["targets"]
        unlabelled = bool(targets.sum() < 0)  # PreciseBN: no labels (as Baseline.forward)
        viewpoints = self.batch_viewpoints(batched_inputs, targets.device, unlabelled)
        if unlabelled:
            targets.zero_()
        outputs = self.heads(features, targets)
        return self.losses(outputs, targets, viewpoints)

    def losses(self, outputs, gt_labels, gt_viewpoints=None):
        loss_dict = super().losses(outputs, gt_labels)  # stock losses + identity accuracy
        loss_dict.update(viewpoint_aware_losses([outputs], gt_labels, gt_viewpoints, self.val_kwargs))
        return loss_dict


def val_kwargs_from_config(cfg):
    from ..config import validate_val_config

    validate_val_config(cfg)
    v = cfg.MODEL.VAL
    return {"scale": v.SCALE, "margin": v.MARGIN, "multi_boundary": v.MULTI_BOUNDARY,
            "partition_weight": v.PARTITION_WEIGHT, "reunion": v.REUNION, "reunion_weight": v.REUNION_WEIGHT,
            "reunion_reduction": v.REUNION_REDUCTION}


def viewpoint_aware_losses(branch_outputs, identities, viewpoints, kw):
    """``loss_partition`` (w_P L_P) and ``loss_reunion`` (λ L_R), averaged over the heads' outputs.

    One head for ``ViewpointBaseline``; MGN's eight branch heads for ``ViewpointMGN`` (as MGN
    averages its per-branch classification losses). Also logs ``viewpoint_accuracy`` and
    ``subcenter_cosine`` (first head).
    """
    for out in branch_outputs:
        if "cosine" not in out:
            raise InvalidConfigError("VAL needs a head that returns 'cosine' and 'unit_centers' "
                                     "(MODEL.HEADS.NAME: IdentityViewpointHead)")
    if viewpoints is None:
        viewpoints = torch.full_like(identities, -1)
    n = len(branch_outputs)
    losses = {"loss_partition": kw["partition_weight"] / n * sum(
        partition_loss(o["cosine"], identities, viewpoints, kw["scale"], kw["margin"], kw["multi_boundary"])
        for o in branch_outputs)}
    if kw["reunion"] and kw["reunion_weight"] > 0:
        losses["loss_reunion"] = kw["reunion_weight"] / n * sum(
            reunion_loss(o["unit_centers"], kw["reunion_reduction"], normalized=True) for o in branch_outputs)
    _log_viewpoint_accuracy(branch_outputs[0]["cosine"], identities, viewpoints)
    _log_subcenter_cosine(branch_outputs[0]["unit_centers"])
    return losses


@torch.no_grad()
def _log_subcenter_cosine(unit_centers):
    """Mean cosine between the V sub-centers of an identity, over identities (1: merged, as the
    reunion loss asks; what the partition keeps apart shows as a lower value). Logged whatever λ is."""
    if unit_centers.shape[1] < 2:
        return
    try:
        storage = get_event_storage()
    except AssertionError:  # called outside a trainer (no event storage)
        return
    storage.put_scalar("subcenter_cosine", -reunion_loss(unit_centers, "mean", normalized=True).item())


def _log_viewpoint_accuracy(cosine, identities, viewpoints):
    """Share of labelled samples whose nearest own-identity sub-center is their viewpoint."""
    labelled = viewpoints >= 0
    if not bool(labelled.any()):
        return
    predicted = assign_viewpoints(cosine, identities, torch.full_like(viewpoints, -1))
    acc = (predicted[labelled] == viewpoints[labelled]).float().mean()
    try:
        get_event_storage().put_scalar("viewpoint_accuracy", acc.item())
    except AssertionError:  # called outside a trainer (no event storage)
        pass
