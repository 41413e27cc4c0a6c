"""Train and test loaders that carry viewpoints, built from FastReID's own loader functions.

The sampler (``NaiveIdentitySampler``, ``BalancedIdentitySampler``, ...) is FastReID's and samples per
identity, never per identity-viewpoint class, so metric losses keep their meaning.
"""
import itertools
import logging
import os

import torch
from fastreid.config import CfgNode as CN
from fastreid.data import build as fr_build
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.transforms import build_transforms
from fastreid.utils import comm

from ..compat.data import loader_for_device
from ..errors import InvalidConfigError

from .bases import ViewpointDataset
from .common import ViewpointCommDataset
from .in_memory import InMemoryViewpointDataset, JitterCollate, decode, log_choice, memory_plan
from .viewpoint_labels import replace_train_viewpoints, train_labels_source

logger = logging.getLogger(__name__)

__all__ = ["ResumableSampler", "load_dataset", "build_viewpoint_train_loader", "build_viewpoint_test_loader", "flip_settings",
           "add_viewpoint_data_config",
           "EVALUATION_VIEWPOINTS"]


class ResumableSampler:
    """Wraps FastReID's infinite training sampler; starts its stream after ``skip`` indices.

    FastReID's samplers restart their (seeded) stream at every ``iter()``; a resumed run sets
    ``skip`` to the images already seen so it continues where the checkpoint left off.
    """

    def __init__(self, sampler):
        self.sampler = sampler
        self.skip = 0

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)


class StockItems:
    """A training set as FastReID's samplers see it: ``img_items`` as ``(img_path, pid, camid)``
    triples (the dataset's own labels, so the samplers' identity order and stream are those of a
    stock FastReID dataset), in the dataset's order, so that sampled indices index the viewpoint
    dataset itself."""

    def __init__(self, train_set):
        self.img_items = [tuple(item[:3]) for item in train_set.img_items]

    def __len__(self):
        return len(self.img_items)


# Viewpoints of test images: front and rear, the paper's V=2 partition of the orientation labels.
EVALUATION_VIEWPOINTS = 2


def add_viewpoint_data_config(cfg):
    """``DATASETS.VIEWPOINT``: how viewpoint labels are read and augmented."""
    cfg.DATASETS.VIEWPOINT = CN()
    # Missing annotation file: "error" stops with the file name; "unknown" trains with viewpoint -1
    # for every image (each is assigned to its nearest sub-center, see losses.assign_viewpoints).
    cfg.DATASETS.VIEWPOINT.MISSING_ANNOTATION = "error"
    # Random flip (INPUT.FLIP) flips the viewpoint label with the image (needed when V tells left
    # from right, e.g. V=8); when False such a combination is refused.
    cfg.DATASETS.VIEWPOINT.FLIP_LABELS = True
    # Viewpoints of the training images: "" the datasets' own; "unknown" none at all (every image goes to
    # its identity's nearest sub-center); or a file of "imgid viewpoint [confidence]" lines, e.g. what
    # tools/label_viewpoints.py writes, that replaces them (images it does not list are unknown).
    cfg.DATASETS.VIEWPOINT.TRAIN_LABELS = ""
    # Training images decoded once into memory and augmented as tensors, a batch at a time, in the training
    # process (data/in_memory.py): "auto" where the run trains on the CPU in one process, its training
    # transforms are resize, flip and colour jitter only, and the decoded images take at most
    # IN_MEMORY_MAX_MB; "on"; "off" (FastReID's file loader and its workers).
    cfg.DATALOADER.IN_MEMORY = "auto"
    cfg.DATALOADER.IN_MEMORY_MAX_MB = 1024
    return cfg


def datasets_root():
    return os.getenv("FASTREID_DATASETS", "datasets")


def load_dataset(cfg, name, **kwargs):
    """Instantiate a registered dataset; viewpoint datasets get V and the viewpoint options."""
    try:
        cls = DATASET_REGISTRY.get(name)
    except KeyError:
        raise InvalidConfigError(f"no dataset {name!r} is registered (DATASETS.NAMES / DATASETS.TESTS); registered: "
                                 f"{', '.join(sorted(DATASET_REGISTRY._obj_map))}; a dataset of your own is registered by its "
                                 "module, given with --import (docs/GETTING_STARTED.md, \"Your own dataset\")") from None
    if issubclass(cls, ViewpointDataset):
        kwargs = {**cls.config_kwargs(cfg), **kwargs}
    return cls(root=datasets_root(), **kwargs)


def flip_settings(cfg, datasets):
    """(flip probability, viewpoint flip map) for the training set, or an error that says what to change.

    Random flip is done by :class:`ViewpointCommDataset` itself so that the label follows the image.
    Refused when a dataset's viewpoints tell left from right and it has no flip map, or when
    ``DATASETS.VIEWPOINT.FLIP_LABELS`` is off for such a V.
    """
    if not cfg.INPUT.FLIP.ENABLED:
        return 0.0, None
    v = cfg.MODEL.VAL.NUM_VIEWPOINTS
    maps = [getattr(d, "flip_map", list(range(v))) for d in datasets]
    names = [type(d).__name__ for d in datasets]
    for name, m in zip(names, maps):
        if m is None:
            raise InvalidConfigError(f"{name} does not say how its viewpoints change under a horizontal flip: "
                             "set INPUT.FLIP.ENABLED False or give the dataset a flip_map.")
    if any(m != maps[0] for m in maps):
        raise InvalidConfigError(f"training datasets {names} disagree on how viewpoints change under a flip")
    flip_map = maps[0]
    if flip_map != list(range(len(flip_map))) and not cfg.DATASETS.VIEWPOINT.FLIP_LABELS:
        raise InvalidConfigError(f"MODEL.VAL.NUM_VIEWPOINTS={v} tells left from right, so a random flip changes the "
                         "viewpoint: set DATASETS.VIEWPOINT.FLIP_LABELS True (the label flips with the image) "
                         "or INPUT.FLIP.ENABLED False.")
    return cfg.INPUT.FLIP.PROB, flip_map


def check_sampler(cfg):
    """Refuse a FastReID sampler that cannot give a batch (instead of waiting for one forever)."""
    if cfg.DATALOADER.SAMPLER_TRAIN == "SetReWeightSampler":
        # triplet_sampler.py:128 asserts IMS_PER_BATCH > sum(SET_WEIGHT) x NUM_INSTANCE, but its loop
        # (triplet_sampler.py:194) yields only batches of exactly that many images: it never yields.
        raise InvalidConfigError(
            "DATALOADER.SAMPLER_TRAIN SetReWeightSampler never yields a batch in FastReID 1.4.0 (its batch size "
            "check contradicts its own assertion): use NaiveIdentitySampler or BalancedIdentitySampler.")


def build_viewpoint_train_loader(cfg):
    source = train_labels_source(cfg)  # a missing file stops before any dataset is read
    datasets = []
    items = []
    for name in cfg.DATASETS.NAMES:
        data = load_dataset(cfg, name, combineall=cfg.DATASETS.COMBINEALL)
        if comm.is_main_process():
            data.show_train()
        datasets.append(data)
        items.extend(data.train)
    if source:
        items = replace_train_viewpoints(items, source, cfg.MODEL.VAL.NUM_VIEWPOINTS)
        if source != "unknown":
            ViewpointDataset.report_unlabelled("DATASETS.VIEWPOINT.TRAIN_LABELS", "train", items)
    flip_prob, flip_map = flip_settings(cfg, datasets)
    tcfg = cfg.clone()
    tcfg.defrost()
    tcfg.INPUT.FLIP.ENABLED = False  # flipped (with its label) by ViewpointCommDataset
    transforms = build_transforms(tcfg, is_train=True)
    plan = memory_plan(cfg, transforms, len(items))
    if plan is None:
        train_set = ViewpointCommDataset(items, transforms, relabel=True, flip_prob=flip_prob, flip_map=flip_map)
    else:
        train_set = InMemoryViewpointDataset(items, decode(items, plan[0]), relabel=True, flip_prob=flip_prob,
                                             flip_map=flip_map)
        log_choice(plan, len(items), cfg)
    # FastReID's samplers read items as (img_path, pid, camid) triples (BalancedIdentitySampler unpacks
    # three fields, triplet_sampler.py:90): they are given the items without the viewpoint.
    check_sampler(cfg)
    args = fr_build._train_loader_from_config(cfg, train_set=StockItems(train_set), transforms=transforms)
    args["train_set"] = train_set
    args["sampler"] = ResumableSampler(args["sampler"])
    with loader_for_device(cfg.MODEL.DEVICE):
        if plan is None:
            return fr_build.build_reid_train_loader(**args)
        # FastReID's build_reid_train_loader with the batch's jitter as its collate, in this process.
        batch_sampler = torch.utils.data.sampler.BatchSampler(
            args["sampler"], args["total_batch_size"] // comm.get_world_size(), True)
        return fr_build.DataLoaderX(comm.get_local_rank(), dataset=train_set, num_workers=0,
                                    batch_sampler=batch_sampler, collate_fn=JitterCollate(plan[1]))


def build_viewpoint_test_loader(cfg, dataset_name, **dataset_kwargs):
    """Test loader whose viewpoints are front/rear (V=2) whatever V the model trains with, so the
    cross-view and same-view metrics mean the same for every run (see evaluation/cross_view.py).

    ``loader.dataset.identity_groups`` is the dataset's look-alike group of each identity, or None.
    """
    dataset_kwargs.setdefault("num_viewpoints", EVALUATION_VIEWPOINTS)
    data = load_dataset(cfg, dataset_name, **dataset_kwargs)
    if comm.is_main_process():
        data.show_test()
    test_set = ViewpointCommDataset(data.query + data.gallery, build_transforms(cfg, is_train=False), relabel=False)
    test_set.identity_groups = data.identity_groups()
    with loader_for_device(cfg.MODEL.DEVICE):
        loader = fr_build.build_reid_test_loader(test_set=test_set, test_batch_size=cfg.TEST.IMS_PER_BATCH,
                                                 num_query=len(data.query), num_workers=cfg.DATALOADER.NUM_WORKERS)
    return loader
