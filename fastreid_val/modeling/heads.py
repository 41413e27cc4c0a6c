"""The identity-viewpoint classification head (Fig. 2a): C x V sub-centers on the hyper-sphere.

Shape legend: N batch, C identities, V viewpoints per identity, d embedding dimension.
"""
import torch.nn.functional as F
from fastreid.config import configurable
from fastreid.modeling.heads import REID_HEADS_REGISTRY, EmbeddingHead

from ..errors import InvalidConfigError

__all__ = ["IdentityViewpointHead"]


@REID_HEADS_REGISTRY.register()
class IdentityViewpointHead(EmbeddingHead):
    """FastReID's ``EmbeddingHead`` whose classifier has C x V identity-viewpoint classes.

    Pooling, embedding and BNNeck are the stock head's (same ``MODEL.HEADS`` keys), so at evaluation
    it returns exactly the embedding the stock head would: inference cost is unchanged. The weight
    ``M`` has shape [C*V, d], row ``j*V + k`` being the center ``M_{j,k}`` of class (j, k).

    Training outputs:
        ``cosine``            [N, C, V] ``s_{j,k} = cos(x_i, M_{j,k})`` (Eq. 4), for the partition loss.
        ``centers``           [C, V, d] the raw sub-centers ``M``.
        ``unit_centers``      [C, V, d] the same, L2-normalised (computed once for both losses).
        ``cls_outputs``       [N, C] identity logits γ·max_k s_{j,k} (sub-centers pooled over V), so
                              FastReID's identity losses (CrossEntropyLoss) still apply.
        ``pred_class_logits`` [N, C] the same, for FastReID's identity-accuracy logging.
        ``features``          [N, d] the feature for metric losses (``MODEL.HEADS.NECK_FEAT``).
    """

    @configurable
    def __init__(self, *, num_classes, num_viewpoints, scale, **kwargs):
        self.num_identities = num_classes
        self.num_viewpoints = num_viewpoints
        # The stock head allocates ``weight`` as [num_classes, d]; here num_classes = C*V.
        kwargs.update(cls_type="Linear", margin=0.0)
        super().__init__(num_classes=num_classes * num_viewpoints, scale=scale, **kwargs)

    @classmethod
    def from_config(cls, cfg):
        args = super().from_config(cfg)
        args["num_viewpoints"] = cfg.MODEL.VAL.NUM_VIEWPOINTS
        args["scale"] = cfg.MODEL.VAL.SCALE
        return args

    def forward(self, features, targets=None):
        pool_feat = self.pool_layer(features)
        neck_feat = self.bottleneck(pool_feat)[..., 0, 0]
        if not self.training:
            return neck_feat

        c, v = self.num_identities, self.num_viewpoints
        unit_centers = F.normalize(self.weight)  # [C*V, d], shared by L_P (Eq. 4) and L_R (Eq. 5)
        cosine = F.linear(F.normalize(neck_feat), unit_centers).view(-1, c, v)  # [N, C, V]
        identity_logits = cosine.amax(dim=2) * self.cls_layer.s  # [N, C]

        if self.neck_feat == "before":
            feat = pool_feat[..., 0, 0]
        elif self.neck_feat == "after":
            feat = neck_feat
        else:
            raise InvalidConfigError(f"MODEL.HEADS.NECK_FEAT must be 'before' or 'after', got {self.neck_feat!r}")
        return {
            "cosine": cosine,
            "centers": self.weight.view(c, v, -1),
            "unit_centers": unit_centers.view(c, v, -1),
            "cls_outputs": identity_logits,
            "pred_class_logits": identity_logits.detach(),
            "features": feat,
        }
