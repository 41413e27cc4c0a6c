"""``ViewpointBaseline``: FastReID's ``Baseline`` trained with the Viewpoint-Aware Loss (Eq. 6).

``L = w_P L_P + λ L_R + (FastReID's stock losses named in MODEL.LOSSES.NAME, on identity targets)``
"""
import torch
from fastreid.config import configurable
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY, Baseline
from fastreid.utils.events import get_event_storage

from .losses import assign_viewpoints, reunion_loss
from .side_information import SideInformationMixin
from .val_loss import ViewpointAwareLoss

__all__ = ["ViewpointAwareMixin", "ViewpointBaseline"]


class ViewpointAwareMixin:
    """What every VAL meta-architecture adds to its FastReID parent: the loss module ``val_loss``
    (:class:`ViewpointAwareLoss`, built from ``MODEL.VAL``) and the batch's viewpoints. Put it before
    the parent class."""

    @configurable
    def __init__(self, *, val_loss=None, diagnostics_period=1, **kwargs):
        super().__init__(**kwargs)
        self.val_loss = val_loss if val_loss is not None else ViewpointAwareLoss()
        self.diagnostics_period = diagnostics_period

    @classmethod
    def from_config(cls, cfg):
        args = super().from_config(cfg)
        args["val_loss"] = ViewpointAwareLoss(cfg)
        args["diagnostics_period"] = cfg.RUN.LOG_PERIOD  # when the writers write (PeriodicWriter)
        return args

    def batch_labels(self, batched_inputs):
        """``targets`` and ``viewpoints`` [N] of a training batch. A PreciseBN batch (negative targets:
        no labels) gets targets 0, as in upstream's ``forward``, and unknown viewpoints. Computed on the
        device, without reading it back (upstream's ``targets.sum() < 0`` is a host read per step)."""
        assert "targets" in batched_inputs, "Identity annotations are missing in training!"
        targets = batched_inputs["targets"]
        viewpoints = self.batch_viewpoints(batched_inputs, targets.device)
        return targets.clamp_min(0), viewpoints

    @staticmethod
    def batch_viewpoints(batched_inputs, device):
        """``viewpoints`` [N] of a training batch on ``device``: -1 (unknown) where the batch has none,
        and for samples whose target is negative (FastReID's PreciseBN convention for "no labels")."""
        targets = batched_inputs["targets"].to(device)
        viewpoints = batched_inputs.get("viewpoints")
        if viewpoints is None:
            return torch.full(targets.shape, -1, dtype=torch.long, device=device)
        return torch.where(targets < 0, -1, viewpoints.to(device))

    def viewpoint_aware_losses(self, branch_outputs, identities, viewpoints):
        """``self.val_loss`` on the heads' outputs; every ``diagnostics_period`` iterations (when the
        writers write) also logs ``viewpoint_accuracy`` and ``subcenter_cosine`` of the first one."""
        losses = self.val_loss(branch_outputs, identities, viewpoints)
        storage = _storage()
        if storage is not None and (storage.iter + 1) % self.diagnostics_period == 0:
            log_viewpoint_accuracy(storage, branch_outputs[0]["cosine"], identities, viewpoints)
            log_subcenter_cosine(storage, branch_outputs[0]["unit_centers"])
        return losses


@META_ARCH_REGISTRY.register()
class ViewpointBaseline(ViewpointAwareMixin, SideInformationMixin, Baseline):
    """Adds ``loss_partition`` and ``loss_reunion`` to the losses of FastReID's ``Baseline``.

    Expects a head that returns ``cosine`` [N, C, V] and ``unit_centers`` [C, V, d] in training
    (:class:`~fastreid_val.modeling.heads.IdentityViewpointHead`). Reads ``viewpoints`` [N] from the
    batch (-1 = unknown; all unknown when the batch has none). Stock losses (``CrossEntropyLoss``,
    ``TripletLoss``, ``CircleLoss``, ``Cosface``) stay available with identity targets, so VAL can be
    swapped into recipes such as SBS (classification + triplet). A ViT backbone with side information
    gets each image's camera and viewpoint (:class:`SideInformationMixin`), as in ``SIEBaseline``.
    """

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone_features(images, batched_inputs)
        if not self.training:
            return self.heads(features)
        targets, viewpoints = self.batch_labels(batched_inputs)
        outputs = self.heads(features, targets)
        return self.losses(outputs, targets, viewpoints)

    def losses(self, outputs, gt_labels, gt_viewpoints=None):
        loss_dict = super().losses(outputs, gt_labels)  # stock losses + identity accuracy
        loss_dict.update(self.viewpoint_aware_losses([outputs], gt_labels, gt_viewpoints))
        return loss_dict


def _storage():
    try:
        return get_event_storage()
    except AssertionError:  # called outside a trainer (no event storage)
        return None


@torch.no_grad()
def log_viewpoint_accuracy(storage, cosine, identities, viewpoints):
    """Share of labelled samples whose nearest own-identity sub-center is their viewpoint (one host read).
    Not logged for V=1, where the one sub-center is every sample's nearest: 1 by construction.

    Args:
        cosine: [N, C, V]; identities: [N] int64; viewpoints: [N] int64, -1 = unknown (not counted).
    """
    if cosine.shape[-1] < 2:
        return
    labelled = viewpoints >= 0
    predicted = assign_viewpoints(cosine, identities, torch.full_like(viewpoints, -1))
    correct, count = torch.stack([((predicted == viewpoints) & labelled).sum(), labelled.sum()]).tolist()
    if count:
        storage.put_scalar("viewpoint_accuracy", correct / count)


@torch.no_grad()
def log_subcenter_cosine(storage, unit_centers):
    """Mean cosine between the V sub-centers of an identity, over identities: 1 when merged (what the
    reunion loss asks), lower as the partition keeps them apart. Logged whatever λ is.

    Args:
        unit_centers: [C, V, d] L2-normalised sub-centers.
    """
    if unit_centers.shape[1] < 2:
        return
    storage.put_scalar("subcenter_cosine", -reunion_loss(unit_centers, "mean", normalized=True).item())
