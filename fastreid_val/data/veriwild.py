"""VERI-Wild (Lou et al., CVPR 2019), FastReID's third vehicle benchmark, read with unknown viewpoints.

VERI-Wild publishes no orientation labels: every image carries viewpoint -1, so a VAL run assigns
each training image to the nearest sub-center of its identity (``losses.assign_viewpoints``) and the
view metrics are not reported (no test image has a front/rear label).
"""
import os

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.veriwild import VeRiWild

from ..errors import AnnotationError
from .bases import ViewpointDataset

__all__ = ["VeRiWildViewpoint", "SmallVeRiWildViewpoint", "MediumVeRiWildViewpoint", "LargeVeRiWildViewpoint"]


@DATASET_REGISTRY.register()
class VeRiWildViewpoint(ViewpointDataset):
    """VERI-Wild in FastReID's stock layout (``VeRiWild``), items ``(img_path, pid, camid, -1)``.

    ``<root>/VERI-Wild/images/<vid>/<imgid>.jpg`` and ``train_test_split/{train_list,vehicle_info}.txt``
    with ``test_<N>.txt`` / ``test_<N>_query.txt`` for the test sizes 3000 (small), 5000 (medium) and
    10000 (large, this class). Parsing is FastReID's own; only the viewpoint is added.
    """

    dataset_dir = "VERI-Wild"
    dataset_name = "veriwild"
    test_size = 10000
    layout_help = ("VERI-Wild/images/<vid>/<imgid>.jpg and VERI-Wild/train_test_split/{train_list, vehicle_info, "
                   "test_N, test_N_query}.txt")

    def __init__(self, root="datasets", num_viewpoints=2, missing_annotation="unknown", **kwargs):
        base = os.path.join(root, self.dataset_dir)
        split = os.path.join(base, "train_test_split")
        query_list = os.path.join(split, f"test_{self.test_size}_query.txt")
        gallery_list = os.path.join(split, f"test_{self.test_size}.txt")
        self.check_before_run([base, os.path.join(base, "images"), os.path.join(split, "train_list.txt"),
                               os.path.join(split, "vehicle_info.txt"), query_list, gallery_list])
        try:
            stock = VeRiWild(root=root, query_list=query_list, gallery_list=gallery_list, verbose=False)
        except (KeyError, IndexError, ValueError) as e:  # an image not in vehicle_info.txt, a malformed line
            raise AnnotationError(f"{type(self).__name__}: {split} lists do not agree with vehicle_info.txt "
                                  f"({type(e).__name__}: {e})") from None
        train, query, gallery = ([(*item, -1) for item in items] for items in (stock.train, stock.query, stock.gallery))
        missing = next((it[0] for it in train + query + gallery if not os.path.isfile(it[0])), None)
        if missing is not None:
            raise AnnotationError(f"{type(self).__name__}: listed image {missing} does not exist")
        self.report_unlabelled(self.dataset_name, "train", train)
        super().__init__(train, query, gallery, num_viewpoints=num_viewpoints, flip_map=list(range(num_viewpoints)),
                         **kwargs)


@DATASET_REGISTRY.register()
class SmallVeRiWildViewpoint(VeRiWildViewpoint):
    """VERI-Wild, small test set (3,000 identities)."""
    test_size = 3000


@DATASET_REGISTRY.register()
class MediumVeRiWildViewpoint(VeRiWildViewpoint):
    """VERI-Wild, medium test set (5,000 identities)."""
    test_size = 5000


@DATASET_REGISTRY.register()
class LargeVeRiWildViewpoint(VeRiWildViewpoint):
    """VERI-Wild, large test set (10,000 identities)."""
    test_size = 10000
