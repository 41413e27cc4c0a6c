"""``ViewpointMGN``: FastReID's multi-branch MGN with an identity-viewpoint head on every branch."""
import torch
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY
from fastreid.modeling.meta_arch.mgn import MGN

from .meta_arch import ViewpointAwareMixin

__all__ = ["ViewpointMGN"]


@META_ARCH_REGISTRY.register()
class ViewpointMGN(ViewpointAwareMixin, MGN):
    """MGN whose eight branch heads are ``MODEL.HEADS.NAME`` (``IdentityViewpointHead`` for VAL).

    VAL's losses are averaged over the branches, as MGN averages its classification losses; MGN's
    own losses (``MODEL.LOSSES.NAME``) stay as upstream computes them.

    Upstream's ``MGN.forward`` calls ``self.losses(*branch_outputs, targets)``, which has no room for
    viewpoints; in training, :meth:`forward` computes the same branch outputs and passes the batch's
    viewpoints to :meth:`losses` explicitly. Evaluation is upstream's.
    """

    def forward(self, batched_inputs):
        if not self.training:
            return super().forward(batched_inputs)
        branch_features = self.branch_features(self.backbone(self.preprocess_image(batched_inputs)))
        targets, viewpoints = self.batch_labels(batched_inputs)
        branch_outputs = [head(feat, targets) for head, feat in zip(self.branch_heads, branch_features)]
        return self.losses(*branch_outputs, targets, gt_viewpoints=viewpoints)

    @property
    def branch_heads(self):
        """The eight heads, in the order of ``MGN.losses``' arguments."""
        return (self.b1_head, self.b2_head, self.b21_head, self.b22_head,
                self.b3_head, self.b31_head, self.b32_head, self.b33_head)

    def branch_features(self, features):
        """MGN's eight branch feature maps from the backbone's, as ``MGN.forward`` cuts them: the global
        branch, then branch 2 whole and in 2 horizontal stripes, branch 3 whole and in 3 stripes."""
        b1_feat = self.b1(features)
        b2_feat = self.b2(features)
        b3_feat = self.b3(features)
        return (b1_feat, b2_feat, *torch.chunk(b2_feat, 2, dim=2), b3_feat, *torch.chunk(b3_feat, 3, dim=2))

    def losses(self, *branch_outputs_and_labels, gt_viewpoints=None):
        *branch_outputs, gt_labels = branch_outputs_and_labels
        loss_dict = super().losses(*branch_outputs, gt_labels)
        loss_dict.update(self.viewpoint_aware_losses(branch_outputs, gt_labels, gt_viewpoints))
        return loss_dict
