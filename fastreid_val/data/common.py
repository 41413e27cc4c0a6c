"""``ViewpointCommDataset``: FastReID's ``CommDataset`` that also returns each image's viewpoint."""
import torch
from fastreid.data.common import CommDataset
from fastreid.data.data_utils import read_image
from PIL import Image

from ..errors import UnreadableImageError

__all__ = ["ViewpointCommDataset", "item_viewpoint"]


def item_viewpoint(item) -> int:
    """Viewpoint of a dataset item: its fourth element, or -1 for stock 3-tuples."""
    return item[3] if len(item) > 3 else -1


class ViewpointCommDataset(CommDataset):
    """Returns ``viewpoints`` beside ``images``, ``targets``, ``camids``, ``img_paths``.

    Args:
        img_items: ``(img_path, pid, camid[, viewpoint])`` tuples.
        transform: image transform, built *without* random flip when ``flip_prob > 0``.
        flip_prob: probability of a horizontal flip applied here, before ``transform``, so that the
            viewpoint label flips with the image (``flip_map``).
        flip_map: permutation of viewpoint labels under a flip.
    """

    def __init__(self, img_items, transform=None, relabel=True, flip_prob=0.0, flip_map=None):
        super().__init__(img_items, transform, relabel)
        if flip_prob > 0 and flip_map is None:
            raise ValueError("random flip needs a viewpoint flip map (flip_map)")
        self.flip_prob = flip_prob
        self.flip_map = flip_map

    def __getitem__(self, index):
        img_path, pid, camid = self.img_items[index][:3]
        viewpoint = item_viewpoint(self.img_items[index])
        try:
            img = read_image(img_path)
        except (OSError, ValueError) as e:
            raise UnreadableImageError(f"cannot read image {img_path}: {e}") from e
        if self.flip_prob > 0 and torch.rand(()).item() < self.flip_prob:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            if viewpoint >= 0:
                viewpoint = self.flip_map[viewpoint]
        if self.transform is not None:
            img = self.transform(img)
        if self.relabel:
            pid = self.pid_dict[pid]
            camid = self.cam_dict[camid]
        return {"images": img, "targets": pid, "camids": camid, "viewpoints": viewpoint, "img_paths": img_path}
