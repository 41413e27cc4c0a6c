"""Reference floors: what retrieval reaches on a test set with no learning at all.

A result means something only beside these, computed on the same test set with the same evaluator
(``TEST.*``: distance, re-ranking, AQE) as the model:

* **random features**: a Gaussian vector per image; the chance level of every metric.
* **raw pixels**: the test image (as the test transform gives it) averaged down to 16x16, as a
  vector; what colour and layout alone give.
* **oracle of the look-alike group**: a one-hot vector of the identity's model and colour, when
  the dataset knows it (SynthVeRi), plus noise of 1e-3 so that ties fall in random order (not in
  the gallery's file order, which groups each identity's images). It ranks every vehicle of the
  query's model and colour first: the easiest cue, perfectly learnt, and nothing more.
"""
import logging

import torch
import torch.nn.functional as F

from ..data.build import build_viewpoint_test_loader
from .evaluator import ViewpointReidEvaluator

logger = logging.getLogger(__name__)

__all__ = ["FLOORS", "reference_floors"]

FLOORS = ("random features", "raw pixels 16x16", "oracle: model and colour")


@torch.no_grad()
def reference_floors(cfg, dataset_name, pixels=16, random_dim=128, seed=0):
    """{floor name: results dict of :class:`ViewpointReidEvaluator`} for one test set.

    The oracle is left out for a dataset without look-alike groups. Deterministic for a ``seed``.
    """
    loader, num_query = build_viewpoint_test_loader(cfg, dataset_name)
    groups = loader.dataset.identity_groups
    names = FLOORS if groups else FLOORS[:2]
    evaluators = {name: ViewpointReidEvaluator(cfg, num_query, identity_groups=groups, dataset_name=dataset_name)
                  for name in names}
    group_index = {g: i for i, g in enumerate(sorted(set(groups.values())))} if groups else {}
    generator = torch.Generator().manual_seed(seed)
    for batch in loader:
        images = batch["images"].float()  # [N, 3, H, W]
        features = {
            FLOORS[0]: torch.randn(len(images), random_dim, generator=generator),
            FLOORS[1]: F.adaptive_avg_pool2d(images, pixels).flatten(1),
        }
        if groups:
            index = torch.tensor([group_index[groups[int(p)]] for p in batch["targets"]])
            one_hot = F.one_hot(index, len(group_index)).float()
            features[FLOORS[2]] = one_hot + 1e-3 * torch.randn(one_hot.shape, generator=generator)
        for name, feats in features.items():
            evaluators[name].process(batch, feats)
    results = {name: evaluator.evaluate() for name, evaluator in evaluators.items()}
    for name, res in results.items():
        logger.info("floor %s on %s: mAP %.2f, Rank-1 %.2f", name, dataset_name, res["mAP"], res["Rank-1"])
    return results
