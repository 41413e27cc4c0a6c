"""VAL's losses against naive float64 loops over the equations, plus their documented properties."""
import math
import os

import pytest
import torch
import torch.nn.functional as F
from fastreid.layers.any_softmax import CircleSoftmax

from fastreid_val.modeling.losses import multi_boundary_logits, partition_loss, reunion_loss

ROOT = os.path.join(os.path.dirname(__file__), "..")


def naive_partition(cosine, ids, views, scale, m, mb):
    """Eq. 3 with Eq. 4 or Eq. 7, one sample and one class at a time."""
    n, c, v = cosine.shape
    total = 0.0
    for i in range(n):
        vi = int(views[i])
        if vi < 0:
            vi = max(range(v), key=lambda k: float(cosine[i, ids[i], k]))
        phi = {}
        for j in range(c):
            for k in range(v):
                s = float(cosine[i, j, k])
                if not mb:
                    phi[j, k] = s
                elif j == int(ids[i]):
                    phi[j, k] = max(1 + m - s, 0.0) * (s - (1 - m))
                else:
                    phi[j, k] = max(s + m, 0.0) * (s - m)
        denom = sum(math.exp(scale * p) for p in phi.values())
        total += -math.log(math.exp(scale * phi[int(ids[i]), vi]) / denom)
    return total / n


def naive_reunion(centers, reduction):
    c, v, _ = centers.shape
    per = []
    for j in range(c):
        acc = 0.0
        for k in range(v):
            for l in range(k + 1, v):
                a, b = centers[j, k], centers[j, l]
                acc += float(a @ b) / (float(a.norm()) * float(b.norm()))
        per.append(-2.0 / (v * (v - 1)) * acc if v > 1 else 0.0)
    return sum(per) if reduction == "sum" else sum(per) / c


def random_batch(n=6, c=4, v=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cosine = torch.rand(n, c, v, generator=g, dtype=dtype) * 2 - 1
    ids = torch.randint(0, c, (n,), generator=g)
    views = torch.randint(0, v, (n,), generator=g)
    return cosine, ids, views


def test_worked_example():
    # One sample of identity 0 seen from viewpoint 0; C=1, V=2; s = (0.8, 0.2); gamma=2, no MB:
    # L = -log(e^1.6 / (e^1.6 + e^0.4)) = log(1 + e^-1.2) = 0.2633...
    cosine = torch.tensor([[[0.8, 0.2]]], dtype=torch.float64)
    loss = partition_loss(cosine, torch.tensor([0]), torch.tensor([0]), scale=2.0, multi_boundary=False)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.2)), abs=1e-12)
    # With MB, m=0.5: phi(0,0) = (1.5-0.8)(0.8-0.5) = 0.21, phi(0,1) = (1.5-0.2)(0.2-0.5) = -0.39
    # (both positive form: same identity). L = log(1 + e^{2(-0.39-0.21)}) = log(1 + e^-1.2).
    loss = partition_loss(cosine, torch.tensor([0]), torch.tensor([0]), scale=2.0, margin=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.2)), abs=1e-12)


def test_worked_example_with_another_identity_shows_the_boundary():
    # Identity 0, viewpoint 0; C=2, V=2; s = ((0.8, 0.2), (0.6, 0.1)); gamma=2, m=0.5.
    # Without MB the logits are 2s = (1.6, 0.4, 1.2, 0.2): L = log(e^1.6 + e^0.4 + e^1.2 + e^0.2) - 1.6 = 0.7967...
    # With MB, own identity (positive form): phi = (0.21, -0.39) as above; identity 1 (negative form,
    # [s + m]_+ (s - m)): phi(1,0) = 1.1 * 0.1 = 0.11, phi(1,1) = 0.6 * -0.4 = -0.24. Logits 2 phi =
    # (0.42, -0.78, 0.22, -0.48): L = log(e^0.42 + e^-0.78 + e^0.22 + e^-0.48) - 0.42 = 0.9268...
    cosine = torch.tensor([[[0.8, 0.2], [0.6, 0.1]]], dtype=torch.float64)
    plain = partition_loss(cosine, torch.tensor([0]), torch.tensor([0]), scale=2.0, multi_boundary=False)
    assert plain.item() == pytest.approx(math.log(sum(math.exp(x) for x in (1.6, 0.4, 1.2, 0.2))) - 1.6, abs=1e-12)
    mb = partition_loss(cosine, torch.tensor([0]), torch.tensor([0]), scale=2.0, margin=0.5)
    assert mb.item() == pytest.approx(math.log(sum(math.exp(x) for x in (0.42, -0.78, 0.22, -0.48))) - 0.42, abs=1e-12)
    assert mb.item() > plain.item() + 0.1  # the stricter inter-identity boundary costs more here


@pytest.mark.parametrize("mb", [True, False])
@pytest.mark.parametrize("v", [1, 2, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_partition_matches_naive_loop(mb, v, dtype):
    cosine, ids, views = random_batch(n=7, c=5, v=v, seed=v, dtype=dtype)
    views[0] = -1  # one unknown viewpoint
    got = partition_loss(cosine, ids, views, scale=48.0, margin=0.5, multi_boundary=mb)
    want = naive_partition(cosine.double(), ids, views, 48.0, 0.5, mb)
    tol = 1e-10 if dtype == torch.float64 else 1e-3
    assert got.dtype == dtype
    assert got.item() == pytest.approx(want, rel=tol, abs=tol)


def test_v1_with_mb_is_circle_softmax_and_without_is_normsoftmax():
    cosine, ids, views = random_batch(n=8, c=6, v=1, seed=1)
    circle = CircleSoftmax(6, 48.0, 0.35)(cosine[:, :, 0].clone(), ids)
    assert partition_loss(cosine, ids, views, 48.0, 0.35, True).item() == pytest.approx(
        F.cross_entropy(circle, ids).item(), abs=1e-10)
    assert partition_loss(cosine, ids, views, 48.0, 0.35, False).item() == pytest.approx(
        F.cross_entropy(48.0 * cosine[:, :, 0], ids).item(), abs=1e-10)


def test_intra_identity_boundary_is_plain():
    # Positive form f(s) = (1+m-s)(s-1+m) is increasing on [-1, 1]: phi(y,1) > phi(y,2) iff s11 > s12.
    s = torch.linspace(-1, 1, 41, dtype=torch.float64)
    s11, s12 = torch.meshgrid(s, s, indexing="ij")
    cos = torch.stack([s11.flatten(), s12.flatten()], dim=1)[:, None, :]  # [N, C=1, V=2]
    phi = multi_boundary_logits(cos, torch.zeros(len(cos), dtype=torch.long), 0.5)[:, 0]
    differ = (cos[:, 0, 0] - cos[:, 0, 1]).abs() > 1e-9
    assert torch.equal((phi[:, 0] > phi[:, 1])[differ], (cos[:, 0, 0] > cos[:, 0, 1])[differ])


def test_inter_identity_boundary_is_strict():
    # phi(1,1) > phi(2,k) iff (s11 - 1)^2 + s2k^2 < 2 m^2 (for s2k > -m, where [s + m]_+ is active).
    m = 0.5
    s = torch.linspace(-0.45, 1, 30, dtype=torch.float64)
    s1, s2 = torch.meshgrid(s, s, indexing="ij")
    cos = torch.stack([s1.flatten(), s2.flatten()], dim=1)[:, :, None]  # [N, C=2, V=1], identity 0
    phi = multi_boundary_logits(cos, torch.zeros(len(cos), dtype=torch.long), m)[:, :, 0]
    circle = (cos[:, 0, 0] - 1) ** 2 + cos[:, 1, 0] ** 2 - 2 * m * m
    clear = circle.abs() > 1e-9
    assert torch.equal((phi[:, 0] > phi[:, 1])[clear], (circle < 0)[clear])
    # and it is stricter than the plain boundary: some s1 > s2 are still on the wrong side
    assert bool(((cos[:, 0, 0] > cos[:, 1, 0]) & (circle > 0)).any())


def test_unknown_viewpoint_goes_to_nearest_subcenter():
    cosine = torch.tensor([[[0.1, 0.9], [0.3, 0.2]]], dtype=torch.float64)
    unknown = partition_loss(cosine, torch.tensor([0]), torch.tensor([-1]))
    assert unknown.item() == pytest.approx(partition_loss(cosine, torch.tensor([0]), torch.tensor([1])).item())
    assert unknown.item() != pytest.approx(partition_loss(cosine, torch.tensor([0]), torch.tensor([0])).item())


def test_single_identity_batch_and_empty_batch():
    cosine, _, views = random_batch(n=5, c=3, v=2)
    ids = torch.full((5,), 2)
    got = partition_loss(cosine, ids, views)
    assert got.item() == pytest.approx(naive_partition(cosine, ids, views, 48.0, 0.5, True), rel=1e-10)
    empty = partition_loss(torch.zeros(0, 3, 2), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    assert empty.item() == 0.0


def test_partition_gradcheck_and_no_input_mutation():
    cosine, ids, views = random_batch(n=4, c=3, v=2, seed=5)
    cosine = (cosine * 0.9).requires_grad_()
    before = cosine.detach().clone()
    assert torch.autograd.gradcheck(lambda x: partition_loss(x, ids, views, 4.0, 0.5, False), (cosine,))
    # With MB the [.]_+ factors are constants for back-propagation: the analytic gradient is that of
    # Eq. 7 with the factors frozen at the current point, which finite differences check here.
    m, x0 = 0.5, cosine.detach()
    own = F.one_hot(ids, 3).bool()[:, :, None]
    alpha_p, alpha_n = (1 + m - x0).clamp_min(0), (x0 + m).clamp_min(0)
    target = ids * 2 + views

    def frozen(x):
        phi = torch.where(own, alpha_p * (x - (1 - m)), alpha_n * (x - m))
        return F.cross_entropy(4.0 * phi.reshape(4, 6), target)

    assert torch.autograd.gradcheck(frozen, (cosine,))
    (ours,) = torch.autograd.grad(partition_loss(cosine, ids, views, 4.0, m, True), cosine)
    (ref,) = torch.autograd.grad(frozen(cosine), cosine)
    assert torch.allclose(ours, ref, atol=1e-12)
    assert torch.equal(cosine.detach(), before)


@pytest.mark.parametrize("v", [1, 2, 3, 4])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_reunion_matches_naive_loop(v, reduction):
    centers = torch.randn(5, v, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(v))
    assert reunion_loss(centers, reduction).item() == pytest.approx(naive_reunion(centers, reduction), abs=1e-12)


def test_reunion_values_and_gradcheck():
    same = torch.ones(3, 2, 4, dtype=torch.float64)
    assert reunion_loss(same).item() == pytest.approx(-3.0)  # cos = 1 for each of 3 identities
    opposite = torch.stack([torch.ones(3, 4), -torch.ones(3, 4)], dim=1).double()
    assert reunion_loss(opposite, "mean").item() == pytest.approx(1.0)
    centers = torch.randn(3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: reunion_loss(x), (centers,))
    # minimising L_R pulls sub-centers together
    loss = reunion_loss(centers)
    loss.backward()
    with torch.no_grad():
        assert reunion_loss(centers - 0.1 * centers.grad).item() < loss.item()


def test_reunion_on_normalized_centers_is_the_same():
    centers = torch.randn(4, 3, 5, dtype=torch.float64)
    unit = F.normalize(centers, dim=-1)
    assert reunion_loss(unit, normalized=True).item() == pytest.approx(reunion_loss(centers).item(), abs=1e-12)


@pytest.mark.parametrize("opts", [[], ["MODEL.VAL.MULTI_BOUNDARY", "False", "MODEL.VAL.PARTITION_WEIGHT", "2.0",
                                       "MODEL.VAL.REUNION_WEIGHT", "0.1", "MODEL.VAL.REUNION_REDUCTION", "mean"]])
def test_loss_module_built_from_config_is_the_pure_functions(opts):
    from fastreid_val.engine import build_config
    from fastreid_val.modeling import ViewpointAwareLoss

    cfg = build_config(os.path.join(ROOT, "configs/Base-VAL.yml"),
                       ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.VAL.SCALE", "16.0", "MODEL.VAL.MARGIN", "0.25", *opts])
    v = cfg.MODEL.VAL
    loss = ViewpointAwareLoss(cfg)
    cosine, ids, views = random_batch(c=4, v=2)
    views[0] = -1
    g = torch.Generator().manual_seed(1)
    # two heads (MGN has eight): each term is averaged over them
    branches = [{"cosine": c, "unit_centers": F.normalize(torch.randn(4, 2, 5, generator=g, dtype=c.dtype), dim=-1)}
                for c in (cosine, cosine.flip(2))]
    got = loss(branches, ids, views)
    want_p = v.PARTITION_WEIGHT / 2 * sum(partition_loss(b["cosine"], ids, views, v.SCALE, v.MARGIN, v.MULTI_BOUNDARY)
                                          for b in branches)
    want_r = v.REUNION_WEIGHT / 2 * sum(reunion_loss(b["unit_centers"], v.REUNION_REDUCTION) for b in branches)
    assert set(got) == {"loss_partition", "loss_reunion"}
    assert got["loss_partition"].item() == pytest.approx(want_p.item(), abs=1e-12)
    assert got["loss_reunion"].item() == pytest.approx(want_r.item(), abs=1e-12)
    unknown = loss(branches, ids, None)["loss_partition"]  # no viewpoints: every one unknown
    assert unknown.item() == pytest.approx(loss(branches, ids, torch.full_like(ids, -1))["loss_partition"].item())


def test_lambda_zero_turns_the_reunion_term_off():
    from fastreid_val.engine import build_config
    from fastreid_val.modeling import ViewpointAwareLoss

    cosine, ids, views = random_batch()
    branch = {"cosine": cosine, "unit_centers": F.normalize(torch.randn(4, 2, 5, dtype=torch.float64), dim=-1)}
    for name in ("SynthVeRi/lp_mnv2.yml", "SynthVeRi/lp_wo_mb_mnv2.yml", "VeRi/lp_r50.yml", "VeRi/lp_wo_mb_r50.yml",
                 "VeRi/val_r50_lambda0.yml"):
        loss = ViewpointAwareLoss(build_config(os.path.join(ROOT, "configs", name), ["MODEL.BACKBONE.PRETRAIN", "False"]))
        assert loss.reunion_weight == 0 and set(loss([branch], ids, views)) == {"loss_partition"}, name
    assert set(ViewpointAwareLoss()([branch], ids, views)) == {"loss_partition", "loss_reunion"}  # paper: λ = 1
