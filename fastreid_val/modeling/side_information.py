"""``SIEBaseline``: FastReID's ``Baseline`` that passes each image's camera and viewpoint to a backbone
that takes them (:class:`~fastreid_val.modeling.vit.SideInformationViT`), in training and evaluation.

FastReID's ``Baseline.forward`` calls ``self.backbone(images)`` only, so a ViT's side information
embedding never sees a camera. The batch already carries ``camids`` (the dataset's own camera numbers,
:class:`~fastreid_val.data.common.ViewpointCommDataset`) and ``viewpoints`` (-1 unknown); a tensor of
images alone (export, search) has every camera and viewpoint unknown unless ``camids`` is given.
Other backbones are called as FastReID calls them.
"""
import torch
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY, Baseline

from .vit import SideInformationViT

__all__ = ["SideInformationMixin", "SIEBaseline"]


class SideInformationMixin:
    """``backbone_features(images, batched_inputs)``: the backbone's features with side information.
    Put it before FastReID's meta-architecture."""

    def backbone_features(self, images, batched_inputs):
        if not isinstance(self.backbone, SideInformationViT):
            return self.backbone(images)
        camids = viewpoints = None
        if isinstance(batched_inputs, dict):
            camids = _as_long(batched_inputs.get("camids"), images.device)
            viewpoints = _as_long(batched_inputs.get("viewpoints"), images.device)
        return self.backbone(images, camids, viewpoints)


def _as_long(values, device):
    if values is None:
        return None
    return torch.as_tensor(values).to(device=device, dtype=torch.long)


@META_ARCH_REGISTRY.register()
class SIEBaseline(SideInformationMixin, Baseline):
    """FastReID's ``Baseline`` (same head, losses, outputs) with side information passed to the backbone."""

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        features = self.backbone_features(images, batched_inputs)
        if not self.training:
            return self.heads(features)
        assert "targets" in batched_inputs, "Person ID annotation are missing in training!"
        targets = batched_inputs["targets"].clamp_min(0)  # upstream: all-negative (PreciseBN) targets -> 0
        return self.losses(self.heads(features, targets), targets)
