"""``ViewpointMGN``: FastReID's multi-branch MGN with an identity-viewpoint head on every branch."""
from fastreid.config import configurable
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY
from fastreid.modeling.meta_arch.mgn import MGN

from .meta_arch import val_kwargs_from_config, viewpoint_aware_losses

__all__ = ["ViewpointMGN"]


@META_ARCH_REGISTRY.register()
class ViewpointMGN(MGN):
    """MGN whose eight branch heads are ``MODEL.HEADS.NAME`` (``IdentityViewpointHead`` for VAL).

    VAL's losses are averaged over the branches, as MGN averages its classification losses; MGN's
    own losses (``MODEL.LOSSES.NAME``) stay as upstream computes them.
    """

    @configurable
    def __init__(self, *, val_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.val_kwargs = val_kwargs
        self._viewpoints = None

    @classmethod
    def from_config(cls, cfg):
        args = super().from_config(cfg)
        args["val_kwargs"] = val_kwargs_from_config(cfg)
        return args

    def forward(self, batched_inputs):
        if self.training:
            views = batched_inputs.get("viewpoints")
            self._viewpoints = None if views is None else views.to(self.device)
            if batched_inputs["targets"].sum() < 0 and self._viewpoints is not None:
                self._viewpoints = self._viewpoints.clone().fill_(-1)  # PreciseBN: no labels
        try:
            return super().forward(batched_inputs)
        finally:
            self._viewpoints = None

    def losses(self, *branch_outputs_and_labels):
        *branch_outputs, gt_labels = branch_outputs_and_labels
        loss_dict = super().losses(*branch_outputs, gt_labels)
        loss_dict.update(viewpoint_aware_losses(branch_outputs, gt_labels, self._viewpoints, self.val_kwargs))
        return loss_dict
