"""FastReID's stock training loop on CPU on a tiny SynthVeRi: train, evaluate (+ re-ranking), resume, eval-only."""
import json
import math
import os

import pytest
import torch

from fastreid.engine import default_argument_parser
from fastreid_val.engine import ViewpointTrainer, build_config, main
from fastreid_val.engine.checkpoint import CheckpointMismatchError

from .conftest import TINY_OPTS

CFG = "configs/SynthVeRi/val_mnv2.yml"
COMMON = TINY_OPTS + ["INPUT.SIZE_TRAIN", "[32, 32]", "INPUT.SIZE_TEST", "[32, 32]", "SOLVER.IMS_PER_BATCH", "32",
                      "DATALOADER.NUM_WORKERS", "0", "SOLVER.WARMUP_ITERS", "5", "RUN.LOG_PERIOD", "2",
                      # ResNet-18 learns the tiny set within these few iterations (OSNet needs more)
                      "MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.BACKBONE.DEPTH", "18x",
                      "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.LAST_STRIDE", "1", "MODEL.BACKBONE.PRETRAIN", "False"]


def _args(out, *extra, resume=False, eval_only=False):
    argv = ["--config-file", CFG] + (["--resume"] if resume else []) + (["--eval-only"] if eval_only else [])
    return default_argument_parser().parse_args(argv + COMMON + ["OUTPUT_DIR", out, *extra])


@pytest.fixture(scope="module")
def trained(datasets_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    # 24 identities x 8 images / 32 = 6 iterations per epoch; 10 epochs, checkpoint every 2
    results = main(_args(out, "SOLVER.MAX_EPOCH", "10", "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "10",
                         "TEST.RERANK.ENABLED", "False"))
    return out, results


def _untrained_results(out):
    cfg = build_config(CFG, COMMON + ["OUTPUT_DIR", out, "TEST.RERANK.ENABLED", "False"])
    cfg.MODEL.HEADS.NUM_CLASSES = 24
    torch.manual_seed(0)
    model = ViewpointTrainer.build_model(cfg)
    return ViewpointTrainer.test(cfg, model)


def test_training_improves_over_untrained_model(trained):
    out, results = trained
    for key in ("Rank-1", "mAP", "mINP", "xview-mAP", "sview-mAP"):
        assert math.isfinite(results[key]), key
    untrained = _untrained_results(out)
    assert results["mAP"] > untrained["mAP"] + 5, (results["mAP"], untrained["mAP"])
    assert os.path.exists(os.path.join(out, "model_final.pth"))


def test_losses_are_logged_and_go_down(trained):
    out, _ = trained
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.json")) if "loss_partition" in l]
    assert {"loss_partition", "loss_reunion", "viewpoint_accuracy", "cls_accuracy"} <= set(rows[0])
    assert rows[-1]["loss_partition"] < rows[0]["loss_partition"]


def _fastreid_cpu_build_dist(feat_1, feat_2, metric="euclidean", **kwargs):
    """FastReID 1.4.0's own build_dist, its faiss-CPU re-ranking (search_option=3) for "jaccard"."""
    from fastreid.utils import compute_dist

    if metric != "jaccard":
        return compute_dist.build_dist(feat_1, feat_2, metric)
    dist = compute_dist.compute_jaccard_distance(torch.cat((feat_1, feat_2)), search_option=3, **kwargs)
    return dist[: len(feat_1), len(feat_1):]


def test_eval_only_reproduces_metrics_and_rerank_runs(trained, monkeypatch):
    out, results = trained
    again = main(_args(out + "/eval", "MODEL.WEIGHTS", os.path.join(out, "model_final.pth"),
                       "TEST.RERANK.ENABLED", "False", eval_only=True))
    for key in ("Rank-1", "mAP", "mINP", "xview-mAP"):
        assert again[key] == pytest.approx(results[key], abs=1e-6)
    reranked = main(_args(out + "/rerank", "MODEL.WEIGHTS", os.path.join(out, "model_final.pth"),
                          "TEST.RERANK.ENABLED", "True", eval_only=True))
    # The same model through FastReID's own ReidEvaluator and its own CPU re-ranking: the same numbers.
    from fastreid.evaluation import ReidEvaluator, inference_on_dataset, reid_evaluation
    from fastreid.utils.checkpoint import Checkpointer

    cfg = build_config(CFG, COMMON + ["OUTPUT_DIR", out + "/rerank", "TEST.RERANK.ENABLED", "True",
                                      "MODEL.HEADS.NUM_CLASSES", "24"])
    model = ViewpointTrainer.build_model(cfg)
    Checkpointer(model).load(os.path.join(out, "model_final.pth"))
    loader, num_query = ViewpointTrainer.build_test_loader(cfg, "SynthVeRi")
    monkeypatch.setattr(reid_evaluation, "build_dist", _fastreid_cpu_build_dist)  # not our S5
    stock = inference_on_dataset(model, loader, ReidEvaluator(cfg, num_query))
    for key in ("Rank-1", "Rank-5", "mAP", "mINP"):
        assert reranked[key] == pytest.approx(stock[key], abs=1e-6), key
    assert reranked["mAP"] != pytest.approx(results["mAP"], abs=1e-3)  # and re-ranking did change the ranking


def test_resume_continues_from_checkpoint(trained):
    out, _ = trained
    longer = main(_args(out, "SOLVER.MAX_EPOCH", "11", "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "11",
                        "TEST.RERANK.ENABLED", "False", resume=True))
    assert math.isfinite(longer["mAP"])
    iters = [json.loads(l)["iteration"] for l in open(os.path.join(out, "metrics.json")) if "loss_partition" in l]
    assert max(iters) >= 65 and min(i for i in iters if i > 59) > 59  # the resumed run started at epoch 10


def test_checkpoint_from_another_v_is_refused(trained):
    out, _ = trained
    with pytest.raises(CheckpointMismatchError, match="another number of identities or MODEL.VAL.NUM_VIEWPOINTS"):
        main(_args(out + "/v4", "MODEL.WEIGHTS", os.path.join(out, "model_final.pth"),
                   "MODEL.VAL.NUM_VIEWPOINTS", "4", "MODEL.HEADS.NUM_CLASSES", "24", eval_only=True))


def test_analyze_features_writes_histograms_and_ranked_lists(trained):
    from PIL import Image

    from fastreid_val.experiments.analyze import analyze

    out, _ = trained
    cfg = build_config(CFG, COMMON + ["OUTPUT_DIR", out, "MODEL.HEADS.NUM_CLASSES", "24"])
    stats = analyze(cfg, os.path.join(out, "model_final.pth"), os.path.join(out, "analysis"))
    assert all(0.0 <= v <= 2.0 for v in stats.values()), stats
    # trained features: one identity seen from one viewpoint is closer than other identities
    assert stats["mean distance: same identity, same viewpoint"] < stats["mean distance: other identities"]
    assert 0 <= stats["look-alike closer than same identity across viewpoints"] <= 1
    for name in ("distances.png", "ranked_lists.png"):
        assert Image.open(os.path.join(out, "analysis", name)).size[0] > 200


def test_diagnostics_of_a_run(trained, tmp_path):
    from PIL import Image

    from fastreid_val.experiments.diagnostics import diagnose, training_curve

    out, _ = trained
    its, cosine = training_curve(out, "subcenter_cosine")
    assert len(its) > 5 and all(-1.0 <= c <= 1.0 for c in cosine)
    assert cosine[-1] > cosine[0]  # the reunion term (λ = 1) pulls an identity's sub-centers together
    table = diagnose({"val": [out]}, {"val": CFG}, str(tmp_path), COMMON)
    assert "final subcenter_cosine" in table and "look-alike closer than same identity across viewpoints" in table
    for name in ("distances.png", "training.png"):
        assert Image.open(tmp_path / name).size[0] > 300
    assert (tmp_path / "diagnostics.md").read_text() == table


def test_floors_are_computed_once_and_kept(datasets_root, tmp_path):
    from fastreid_val.evaluation.floors import FLOORS
    from fastreid_val.experiments.compare import cached_floors

    floors = cached_floors(CFG, str(tmp_path), COMMON)["SynthVeRi"]
    assert list(floors) == list(FLOORS)
    random, pixels, oracle = (floors[f] for f in FLOORS)
    assert random["mAP"] < oracle["mAP"] and oracle["lookalike-wrong-Rank-1"] == 100.0
    assert random["lookalike-wrong-Rank-1"] < 50.0  # chance: few of the other identities are look-alikes
    assert cached_floors(CFG, str(tmp_path), COMMON)["SynthVeRi"] == floors  # read back from floors.json
