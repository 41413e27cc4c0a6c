"""FastReID's ViT with TransReID's side information embedding (SIE) built and used.

Upstream's ``build_vit_backbone`` (fastreid/modeling/backbones/vision_transformer.py) never passes a
camera count to ``VisionTransformer`` (``cam_num`` stays 0, ``sie_embed`` is never built) and
``Baseline.forward`` never passes camera ids: SIE is dead code there. ``build_sie_vit_backbone`` builds
the same network (same keys, so FastReID's checkpoints and ImageNet files fit) with SIE from
``MODEL.SIE``, and the meta-architectures of :mod:`fastreid_val.modeling.side_information` pass each
image's camera (and viewpoint) to it, in training and in evaluation.

SIE (TransReID, Eq. 6-7): ``z_0 = [cls; patches] + pos + λ S[c·V' + v]``, ``λ`` = ``MODEL.BACKBONE.SIE_COE``,
``S`` a table of ``CAMERAS × VIEWS`` learned vectors (``VIEWS`` 0: ``CAMERAS`` vectors, camera only).
An unknown camera (id -1: an image whose camera is not known, e.g. a search query) gets the mean of the
cameras' vectors, an unknown viewpoint (-1) the mean over viewpoints of its camera: the expected side
information, rather than one camera's.

Shape legend: N images, P patches + 1 (class token), D embedding dim (768), K cameras, V viewpoints.
"""
import logging

import torch
from fastreid.layers import trunc_normal_
from fastreid.modeling.backbones import BACKBONE_REGISTRY
from fastreid.modeling.backbones.vision_transformer import VisionTransformer

from ..errors import InvalidConfigError
from .vit_weights import load_imagenet_vit

logger = logging.getLogger(__name__)

__all__ = ["SideInformationViT", "VIT_DEPTHS", "build_sie_vit_backbone"]

# FastReID's two ViT shapes (build_vit_backbone): blocks, heads, MLP ratio, qkv bias, qk scale; width 768.
VIT_DEPTHS = {"small": dict(depth=8, num_heads=8, mlp_ratio=3.0, qkv_bias=False, qk_scale=768 ** -0.5),
              "base": dict(depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True, qk_scale=None)}


class SideInformationViT(VisionTransformer):
    """``VisionTransformer`` whose SIE table is ``[K·V, 1, D]`` (TransReID's camera × view embedding) or
    ``[K, 1, D]`` (``views`` 0), indexed by ``forward(x, camids, viewpoints)``; ``cameras`` 0 is SIE off."""

    def __init__(self, *, cameras=0, views=0, **kwargs):
        super().__init__(camera=0, **kwargs)  # upstream's own table (camera > 1) is not built: ours is below
        self.cameras, self.views = cameras, views
        if cameras > 0:
            self.sie_embed = torch.nn.Parameter(torch.zeros(cameras * max(views, 1), 1, self.embed_dim))
            trunc_normal_(self.sie_embed, std=.02)

    def side_information(self, camids, viewpoints, n):
        """``[N, 1, D]`` SIE vectors (zeros when SIE is off). ``camids``/``viewpoints`` [N] int64, -1 unknown
        (None: all unknown)."""
        if self.cameras == 0:
            return self.pos_embed.new_zeros(n, 1, self.embed_dim)
        table = self.sie_embed.view(self.cameras, max(self.views, 1), self.embed_dim)  # [K, V, D]
        table = torch.cat([table, table.mean(1, keepdim=True)], 1)  # column V: viewpoint unknown
        table = torch.cat([table, table.mean(0, keepdim=True)], 0)  # row K: camera unknown
        unknown = torch.full((n,), -1, dtype=torch.long, device=table.device)
        cam = unknown if camids is None else camids.to(table.device).long()
        view = unknown if viewpoints is None or self.views == 0 else viewpoints.to(table.device).long()
        cam = torch.where(cam < 0, self.cameras, cam)
        view = torch.where(view < 0, table.shape[1] - 1, view) if self.views else torch.zeros_like(cam)
        return table[cam, view].unsqueeze(1)

    def forward(self, x, camids=None, viewpoints=None):
        """x [N, 3, H, W] -> class token [N, D, 1, 1], as upstream's forward."""
        n = x.shape[0]
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1)  # [N, P, D]
        x = x + self.pos_embed + self.sie_xishu * self.side_information(camids, viewpoints, n)
        x = self.pos_drop(x)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x[:, 0].reshape(n, -1, 1, 1)


@BACKBONE_REGISTRY.register()
def build_sie_vit_backbone(cfg):
    """FastReID's ViT (``MODEL.BACKBONE`` keys of ``build_vit_backbone``) with SIE from ``MODEL.SIE``, and its
    ImageNet weights loaded strictly (:func:`~fastreid_val.modeling.vit_weights.load_imagenet_vit`)."""
    b, s = cfg.MODEL.BACKBONE, cfg.MODEL.SIE
    if b.DEPTH not in VIT_DEPTHS:
        raise InvalidConfigError(f"MODEL.BACKBONE.DEPTH {b.DEPTH!r}: FastReID's ViT has the depths "
                                 f"{', '.join(VIT_DEPTHS)} only")
    model = SideInformationViT(img_size=cfg.INPUT.SIZE_TRAIN, stride_size=b.STRIDE_SIZE, sie_xishu=b.SIE_COE,
                               drop_path_rate=b.DROP_PATH_RATIO, drop_rate=b.DROP_RATIO,
                               attn_drop_rate=b.ATT_DROP_RATE, cameras=s.CAMERAS, views=s.VIEWS,
                               **VIT_DEPTHS[b.DEPTH])
    if b.PRETRAIN:
        load_imagenet_vit(model, b.PRETRAIN_PATH)
    else:
        logger.info("MODEL.BACKBONE.PRETRAIN is off: the ViT trains from scratch.")
    return model
