"""``ViewpointMGN``: FastReID's multi-branch MGN with an identity-viewpoint head on every branch."""
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY
from fastreid.modeling.meta_arch.mgn import MGN

from .meta_arch import ViewpointAwareMixin

__all__ = ["ViewpointMGN"]


@META_ARCH_REGISTRY.register()
class ViewpointMGN(ViewpointAwareMixin, MGN):
    """MGN whose eight branch heads are ``MODEL.HEADS.NAME`` (``IdentityViewpointHead`` for VAL).

    VAL's losses are averaged over the branches, as MGN averages its classification losses; MGN's
    own losses (``MODEL.LOSSES.NAME``) stay as upstream computes them.

    ``MGN.forward`` calls ``self.losses(*branch_outputs, targets)`` with a fixed signature, so the
    batch's viewpoints are held on the module for the duration of that one call (and cleared after).
    """

    _viewpoints = None

    def forward(self, batched_inputs):
        if self.training:
            self._viewpoints = self.batch_viewpoints(batched_inputs, self.device)
        try:
            return super().forward(batched_inputs)
        finally:
            self._viewpoints = None

    def losses(self, *branch_outputs_and_labels):
        *branch_outputs, gt_labels = branch_outputs_and_labels
        loss_dict = super().losses(*branch_outputs, gt_labels)
        loss_dict.update(self.viewpoint_aware_losses(branch_outputs, gt_labels, self._viewpoints))
        return loss_dict
