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
    it returns exactly the embedding the stock head would: inference cost is unchanged.
    ``MODEL.HEADS.NUM_CLASSES`` is C, the number of identities (FastReID sets it from the training
    set); the classifier weight ``M`` has C x V rows, shape [C*V, d], row ``j*V + k`` being the
    sub-center ``M_{j,k}`` of class (j, k).

    Training outputs:
        ``cosine``            [N, C, V] ``s_{j,k} = cos(x_i, M_{j,k})`` (Eq. 4), for the partition loss.
        ``unit_centers``      [C, V, d] the sub-centers ``M``, L2-normalised (as in ``cosine``), for
                              the reunion loss.
        ``cls_outputs``       [N, C] identity logits γ·max_k s_{j,k} (sub-centers pooled over V), so
                              FastReID's identity losses (CrossEntropyLoss) still apply.
        ``pred_class_logits`` [N, C] the same, for FastReID's identity-accuracy logging.
        ``features``          [N, d] the feature for metric losses (``MODEL.HEADS.NECK_FEAT``).
    """

    @configurable
    def __init__(self, *, num_identities, num_viewpoints, scale, **kwargs):
        """
        Args:
            num_identities: C (``MODEL.HEADS.NUM_CLASSES``).
            num_viewpoints: V (``MODEL.VAL.NUM_VIEWPOINTS``).
            scale: γ (``MODEL.VAL.SCALE``) of the identity logits.
            kwargs: the stock head's arguments (pooling, neck, embedding); its classifier layer only
                supplies the scale (``cls_layer.s``): VAL's margin is in the loss.
        """
        self.num_identities = num_identities
        self.num_viewpoints = num_viewpoints
        kwargs.update(cls_type="Linear", margin=0.0)
        # The stock head allocates ``weight`` as [num_classes, d]: one row per identity-viewpoint class.
        super().__init__(num_classes=num_identities * num_viewpoints, scale=scale, **kwargs)

    @classmethod
    def from_config(cls, cfg):
        args = super().from_config(cfg)
        args["num_identities"] = args.pop("num_classes")  # MODEL.HEADS.NUM_CLASSES counts identities: C
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
            "unit_centers": unit_centers.view(c, v, -1),
            "cls_outputs": identity_logits,
            "pred_class_logits": identity_logits.detach(),
            "features": feat,
        }
