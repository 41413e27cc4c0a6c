"""Contracts between the pieces: the head's weight layout, the partition target, the reunion view, the
losses a model returns, and the cross-view masks with unknown viewpoints."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage

from fastreid_val.engine import build_config
from fastreid_val.evaluation.cross_view import view_masks
from fastreid_val.modeling import IdentityViewpointHead, partition_loss, reunion_loss

C, V, D = 3, 2, 8


def _head():
    cfg = build_config("configs/SynthVeRi/val_mnv2.yml", ["MODEL.BACKBONE.FEAT_DIM", str(D), "MODEL.HEADS.NUM_CLASSES",
                                                           str(C), "MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    return IdentityViewpointHead(cfg).train()


def test_weight_row_j_times_v_plus_k_is_subcenter_j_k():
    head = _head()
    x = torch.randn(5, D, 1, 1)
    out = head(x, torch.zeros(5, dtype=torch.long))
    feat = F.normalize(head.bottleneck(x)[..., 0, 0])
    for j in range(C):
        for k in range(V):
            expected = feat @ F.normalize(head.weight[j * V + k], dim=0)
            assert torch.allclose(out["cosine"][:, j, k], expected, atol=1e-6), (j, k)
            assert torch.allclose(out["unit_centers"][j, k], F.normalize(head.weight[j * V + k], dim=0))


def test_partition_target_is_y_times_v_plus_v():
    head = _head()
    x = torch.randn(6, D, 1, 1)
    ids, views = torch.tensor([0, 1, 2, 2, 1, 0]), torch.tensor([1, 0, 1, 0, 1, 0])
    out = head(x, ids)
    flat = F.normalize(head.bottleneck(x)[..., 0, 0]) @ F.normalize(head.weight).t()  # [N, C*V], rows as stored
    expected = F.cross_entropy(48.0 * flat, ids * V + views)
    got = partition_loss(out["cosine"], ids, views, scale=48.0, multi_boundary=False)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_reunion_pairs_the_rows_of_one_identity():
    head = _head()
    out = head(torch.randn(2, D, 1, 1), torch.zeros(2, dtype=torch.long))
    w = F.normalize(head.weight.detach())
    expected = -sum(float(w[j * V] @ w[j * V + 1]) for j in range(C))  # V=2: one pair per identity
    assert reunion_loss(out["unit_centers"], "sum", normalized=True).item() == pytest.approx(expected, abs=1e-5)
    # A transposed view (row k*C + j) pairs other rows: a different value for these weights.
    transposed = F.normalize(head.weight.detach()).view(V, C, D).transpose(0, 1)
    assert reunion_loss(transposed, "sum", normalized=True).item() != pytest.approx(expected, abs=1e-3)


def test_losses_returned_by_the_model_equal_the_pure_functions():
    cfg = build_config("configs/SynthVeRi/val_mnv2.yml", ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES",
                                                           "3", "MODEL.DEVICE", "cpu", "MODEL.VAL.REUNION_WEIGHT", "0.7", "RUN.LOG_PERIOD", "1"])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = {"images": torch.rand(4, 3, 32, 32) * 255, "targets": torch.tensor([0, 0, 1, 2]),
             "viewpoints": torch.tensor([0, 1, -1, 1])}
    with EventStorage(0) as storage:
        losses = model({**batch, "images": batch["images"].clone()})  # preprocessing works in place
        logged = {k: v[0] for k, v in storage.latest().items()}
    # The same batch again, by hand: train-mode BatchNorm gives the same features for the same batch.
    out = model.heads(model.backbone(model.preprocess_image({**batch, "images": batch["images"].clone()})),
                      batch["targets"])
    ids, views = batch["targets"], batch["viewpoints"]
    assert losses["loss_partition"].item() == pytest.approx(
        partition_loss(out["cosine"], ids, views, scale=48.0, margin=0.5).item(), rel=1e-5)
    assert losses["loss_reunion"].item() == pytest.approx(
        0.7 * reunion_loss(out["unit_centers"], "sum", normalized=True).item(), rel=1e-5)
    u = out["unit_centers"].detach()
    assert logged["subcenter_cosine"] == pytest.approx(float((u[:, 0] * u[:, 1]).sum(-1).mean()), abs=1e-5)
    nearest = out["cosine"].detach()[torch.arange(4), ids].argmax(1)
    labelled = views >= 0
    assert logged["viewpoint_accuracy"] == pytest.approx(float((nearest[labelled] == views[labelled]).float().mean()))


def test_one_sub_center_logs_no_viewpoint_accuracy():
    """With V=1 every sample is nearest its only sub-center: an accuracy of 1 that says nothing."""
    cfg = build_config("configs/SynthVeRi/val_v1_mnv2.yml", ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.HEADS.NUM_CLASSES",
                                                              "3", "MODEL.DEVICE", "cpu", "RUN.LOG_PERIOD", "1"])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = {"images": torch.rand(4, 3, 32, 32) * 255, "targets": torch.tensor([0, 0, 1, 2]),
             "viewpoints": torch.tensor([0, 0, -1, 0])}  # one viewpoint subclass
    with EventStorage(0) as storage:
        losses = model(batch)
        logged = set(storage.latest())
    assert "loss_partition" in losses and torch.isfinite(losses["loss_partition"])
    assert not {"viewpoint_accuracy", "subcenter_cosine"} & logged


def test_cross_view_masks_with_unknown_viewpoints():
    # Query 0 (identity 7, camera 0, front); gallery: same identity front / rear / unknown, from
    # camera 1, the same identity from the query's camera, and another identity with unknown view.
    q_pids, q_cams, q_views = np.array([7]), np.array([0]), np.array([0])
    g_pids = np.array([7, 7, 7, 7, 8])
    g_cams = np.array([1, 1, 1, 0, 1])
    g_views = np.array([0, 1, -1, 1, -1])
    stock, cross, same = (m[0].tolist() for m in view_masks(q_pids, g_pids, q_cams, g_cams, q_views, g_views))
    assert stock == [True, True, True, False, True]
    assert cross == [False, True, False, False, True]  # only the rear positive; negatives always count
    assert same == [True, False, False, False, True]  # only the front positive
    # A query of unknown viewpoint has no positive in either view protocol.
    _, cross, same = view_masks(q_pids, g_pids, q_cams, g_cams, np.array([-1]), g_views)
    assert cross[0].tolist() == same[0].tolist() == [False, False, False, False, True]
