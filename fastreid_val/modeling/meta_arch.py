"""``ViewpointBaseline``: FastReID's ``Baseline`` trained with the Viewpoint-Aware Loss (Eq. 6).

``L = w_P L_P + λ L_R + (FastReID's stock losses named in MODEL.LOSSES.NAME, on identity targets)``
"""
import torch
from fastreid.config import configurable
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY, Baseline
from fastreid.utils.events import get_event_storage

from .losses import assign_viewpoints, partition_loss, reunion_loss

__all__ = ["ViewpointBaseline"]


@META_ARCH_REGISTRY.register()
class ViewpointBaseline(Baseline):
    """Adds ``loss_partition`` and ``loss_reunion`` to the losses of FastReID's ``Baseline``.

    Expects a head that returns ``cosine`` [N, C, V] and ``centers`` [C, V, d] in training
    (:class:`~fastreid_val.modeling.heads.IdentityViewpointHead`). Reads ``viewpoints`` [N] from the
    batch (-1 = unknown; all unknown when the batch has none). Stock losses (``CrossEntropyLoss``,
    ``TripletLoss``, ``CircleLoss``, ``Cosface``) stay available with identity targets, so VAL can be
    swapped into recipes such as SBS (classification + triplet).
    """

    @configurable
    def __init__(self, *, val_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.val_kwargs = val_kwargs

    @classmethod
    def from_config(cls, cfg):
        from ..config import validate_val_config

        validate_val_config(cfg)
        args = super().from_config(cfg)
        v = cfg.MODEL.VAL
        args["val_kwargs"] = {
            "scale": v.SCALE,
            "margin": v.MARGIN,
            "multi_boundary": v.MULTI_BOUNDARY,
            "partition_weight": v.PARTITION_WEIGHT,
            "reunion": v.REUNION,
            "reunion_weight": v.REUNION_WEIGHT,
            "reunion_reduction": v.REUNION_REDUCTION,
        }
        return args

    def forward(self, batched_inputs):
        if not self.training:
            return super().forward(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images)
        assert "targets" in batched_inputs, "Identity annotations are missing in training!"
        targets = batched_inputs["targets"]
        viewpoints = batched_inputs.get("viewpoints")
        if viewpoints is None:
            viewpoints = torch.full_like(targets, -1)
        viewpoints = viewpoints.to(targets.device)
        # Same PreciseBN convention as Baseline.forward: negative targets mean "no labels".
        if targets.sum() < 0:
            targets.zero_()
            viewpoints.fill_(-1)
        outputs = self.heads(features, targets)
        return self.losses(outputs, targets, viewpoints)

    def losses(self, outputs, gt_labels, gt_viewpoints=None):
        loss_dict = super().losses(outputs, gt_labels)  # stock losses + identity accuracy
        if "cosine" not in outputs:
            raise KeyError("ViewpointBaseline needs a head that returns 'cosine' and 'centers' "
                           "(MODEL.HEADS.NAME: IdentityViewpointHead)")
        if gt_viewpoints is None:
            gt_viewpoints = torch.full_like(gt_labels, -1)
        kw = self.val_kwargs
        cosine = outputs["cosine"]
        loss_dict["loss_partition"] = kw["partition_weight"] * partition_loss(
            cosine, gt_labels, gt_viewpoints, kw["scale"], kw["margin"], kw["multi_boundary"])
        if kw["reunion"] and kw["reunion_weight"] > 0:
            loss_dict["loss_reunion"] = kw["reunion_weight"] * reunion_loss(
                outputs["centers"], kw["reunion_reduction"])
        self._log_viewpoint_accuracy(cosine, gt_labels, gt_viewpoints)
        return loss_dict

    @staticmethod
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
