"""Which images to hand-label: N of a training set, spread over identities and cameras, seeded.

The paper labels 300 images (Sec. 3.1); a labeller learns the viewpoint best from images of many
vehicles seen by many cameras, so the pick takes one image of every identity before a second of any,
and each identity's images go camera by camera.
"""
import logging
import random
from collections import Counter, defaultdict
from typing import List, Sequence, Tuple

__all__ = ["spread_sample", "dataset_items", "list_items"]


def spread_sample(items: Sequence[Tuple[str, object, object]], n: int, seed: int = 0) -> List[str]:
    """``n`` image paths of ``items`` (``(path, identity, camera)``, more fields ignored), in labelling order.

    Identities take turns in a seeded order, so every identity gives one image before any gives a second.
    At its turn an identity gives an image from a camera it has not given yet in this cycle, the one
    picked least so far over all identities (ties in a seeded order), so the pick is spread over cameras
    too. The same items and seed give the same pick whatever the items' order.
    """
    rng = random.Random(seed)
    by_id = defaultdict(lambda: defaultdict(list))
    for it in sorted(items, key=lambda it: (str(it[1]), str(it[2]), it[0])):
        by_id[it[1]][it[2]].append(it[0])
    ids = sorted(by_id, key=str)
    rng.shuffle(ids)
    cam_order = {}
    for pid in ids:
        cam_order[pid] = sorted(by_id[pid], key=str)
        rng.shuffle(cam_order[pid])
        for cam in cam_order[pid]:
            rng.shuffle(by_id[pid][cam])
    picked, per_camera, used = [], Counter(), defaultdict(set)
    while len(picked) < n:
        before = len(picked)
        for pid in ids:
            cams = [c for c in cam_order[pid] if by_id[pid][c]]
            if not cams:
                continue
            fresh = [c for c in cams if c not in used[pid]]
            if not fresh:  # every camera of this identity has given one: a new cycle
                used[pid].clear()
                fresh = cams
            cam = min(fresh, key=lambda c: per_camera[c])
            picked.append(by_id[pid][cam].pop())
            per_camera[cam] += 1
            used[pid].add(cam)
            if len(picked) == n:
                break
        if len(picked) == before:  # fewer images than n
            break
    return picked


def dataset_items(name: str, opts: Sequence[str] = ()):
    """The training items ``(path, identity, camera, viewpoint)`` of the registered dataset ``name`` under
    ``$FASTREID_DATASETS`` (``opts``: config overrides, e.g. SynthVeRi's settings). A dataset without
    viewpoint labels is read all the same (viewpoint -1): labelling it is the point. Viewpoints are
    front/rear (V=2), the mapping every dataset here has."""
    from ..data.build import load_dataset
    from ..engine.launcher import build_config

    cfg = build_config("", list(opts))
    quiet = logging.getLogger("fastreid_val.data")  # "trains with viewpoint -1": not what happens here
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        data = load_dataset(cfg, name, num_viewpoints=2, missing_annotation="unknown")
    finally:
        quiet.setLevel(level)
    return list(data.train)


def list_items(paths: Sequence[str]):
    """Items of a plain list of images: no identity or camera is known, so each image is its own
    identity and the pick is a seeded random sample."""
    return [(p, p, "") for p in paths]
