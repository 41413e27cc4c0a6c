"""Base class of viewpoint-labelled datasets: items are ``(img_path, pid, camid, viewpoint)``.

To register your own dataset, subclass :class:`ViewpointDataset`, build the three lists with a
viewpoint in ``0..V-1`` (or -1 when unknown) as fourth element, and decorate the class with
``@DATASET_REGISTRY.register()`` (see docs/GETTING_STARTED.md, "Your own dataset").
"""
import logging
import os
from typing import List, Optional

from fastreid.data.datasets.bases import ImageDataset

from ..errors import AnnotationError, DatasetNotFoundError

logger = logging.getLogger(__name__)

__all__ = ["ViewpointDataset", "DatasetNotFoundError"]


class ViewpointDataset(ImageDataset):
    """An ``ImageDataset`` whose items carry a viewpoint label as fourth element.

    Subclasses set ``flip_map``: the permutation of viewpoint labels under a horizontal image flip
    (``list(range(V))`` when labels do not tell left from right), or ``None`` when unknown, in which
    case random flipping is refused unless labels are flip-invariant by construction.
    """

    layout_help = ""  # one line describing the expected folder layout, for error messages

    @classmethod
    def config_kwargs(cls, cfg) -> dict:
        """Constructor arguments taken from the config; subclasses add their own options."""
        return {"num_viewpoints": cfg.MODEL.VAL.NUM_VIEWPOINTS,
                "missing_annotation": cfg.DATASETS.VIEWPOINT.MISSING_ANNOTATION}

    def __init__(self, train, query, gallery, num_viewpoints: int = 2,
                 flip_map: Optional[List[int]] = None, **kwargs):
        self.num_viewpoints = num_viewpoints
        self.flip_map = flip_map
        for name, items in (("train", train), ("query", query), ("gallery", gallery)):
            bad = [it for it in items if not -1 <= it[3] < num_viewpoints]
            if bad:
                raise AnnotationError(f"{type(self).__name__}: {len(bad)} {name} images have a viewpoint outside "
                                 f"-1..{num_viewpoints - 1} (e.g. {bad[0][0]} -> {bad[0][3]})")
        super().__init__(train, query, gallery, **kwargs)

    def identity_groups(self) -> Optional[dict]:
        """{identity: look-alike group (e.g. model and colour)} of the test identities, when the dataset
        knows it (SynthVeRi); None otherwise. Used by the look-alike metric and the oracle floor."""
        return None

    def check_before_run(self, required_files):
        for path in [required_files] if isinstance(required_files, str) else required_files:
            if not os.path.exists(path):
                raise DatasetNotFoundError(
                    f"{type(self).__name__}: {path} not found. Expected layout: {self.layout_help} "
                    f"under $FASTREID_DATASETS (now {os.getenv('FASTREID_DATASETS', 'datasets')!r}).")

    def combine_all(self):
        combined = list(self.train)
        for img_path, pid, camid, viewpoint in list(self.query) + list(self.gallery):
            if pid in self._junk_pids:
                continue
            name = getattr(self, "dataset_name", "Unknown")
            combined.append((img_path, f"{name}_test_{pid}", f"{name}_test_{camid}", viewpoint))
        self._train = combined

    @staticmethod
    def report_unlabelled(dataset_name: str, split: str, items) -> int:
        """Log how many images have no viewpoint label, and the policy applied to them."""
        missing = sum(1 for it in items if it[3] < 0)
        if missing:
            logger.warning(
                "%s %s: %d of %d images have no viewpoint label; they train with viewpoint -1 "
                "(assigned to the nearest sub-center of their identity).", dataset_name, split, missing, len(items))
        return missing
