"""The CircleSoftmax control (configs/SynthVeRi/circle_s48m05_mnv2.yml) against VAL with V=1
(val_v1_mnv2.yml): an independent check of our Eq. 7 against FastReID's own code.

Written out, Eq. 7 with one sub-center per identity is Circle loss in its classification form, which
FastReID implements as ``fastreid.layers.any_softmax.CircleSoftmax`` (applied by ``EmbeddingHead`` to the
cosine logits ``F.linear(F.normalize(x), F.normalize(W))``) followed by ``cross_entropy_loss``. Both
detach the ``[·]_+`` factors, use Δ_p = 1 - m and Δ_n = m, clamp at 0 and scale by γ after the margins,
so in float64 the values and the gradients (features, weights) agree to rounding.

The one difference is FastReID's denominator: its ``cross_entropy_loss`` divides the summed loss by the
number of samples whose loss is non-zero, not by N (``partition_loss`` takes ``F.cross_entropy``'s mean).
A sample's loss is exactly 0 only when ``1 + Σ_j exp(z_j - z_y)`` rounds to 1, i.e. a logit gap of about
``-log(ε/2) + log(C-1)``: about 22 for C = 200 in float32, never in float64 at these scales. Eq. 7 bounds
the gap by ``2 γ m²`` (φ_p ≤ m² at s = 1, φ_n ≥ -m² at s = 0), 24 at γ=48, m=0.5 (and 15.7 at SBS's
s=64, m=0.35, where it cannot happen): only a sample already classified with cosine near 1 to its own
center and near 0 to all others can reach it, late in training. Then FastReID's loss is larger by
``N / #non-zero`` and so are all its gradients, the same as a slightly larger learning rate on the head
and backbone; the last test shows the difference on such a batch.
"""
import pytest
import torch
import torch.nn.functional as F
from fastreid.layers.any_softmax import CircleSoftmax
from fastreid.modeling.heads import EmbeddingHead
from fastreid.modeling.losses import cross_entropy_loss

from fastreid_val.modeling.heads import IdentityViewpointHead
from fastreid_val.modeling.losses import partition_loss

GAMMA, M = 48.0, 0.5


def _leaves(n=16, c=10, d=12, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_()
    weight = torch.randn(c, d, generator=g, dtype=dtype).requires_grad_()
    ids = torch.randint(0, c, (n,), generator=g)
    return feat, weight, ids


def _fastreid_circle(feat, weight, ids, scale=GAMMA, margin=M):
    """EmbeddingHead's training path with CLS_LAYER CircleSoftmax, then FastReID's CE without smoothing."""
    logits = F.linear(F.normalize(feat), F.normalize(weight))
    layer = CircleSoftmax(weight.shape[0], scale, margin)
    return cross_entropy_loss(layer(logits.clone(), ids), ids, eps=0.0)


def _val_v1(feat, weight, ids, scale=GAMMA, margin=M):
    """IdentityViewpointHead's cosine with V=1 ([N, C, 1]), then the partition loss with Eq. 7."""
    cosine = F.linear(F.normalize(feat), F.normalize(weight))[:, :, None]
    return partition_loss(cosine, ids, torch.zeros_like(ids), scale, margin, multi_boundary=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_circle_softmax_equals_val_v1_in_value_and_gradient(seed):
    feat, weight, ids = _leaves(seed=seed)
    a = _fastreid_circle(feat, weight, ids)
    ga = torch.autograd.grad(a, (feat, weight))
    b = _val_v1(feat, weight, ids)
    gb = torch.autograd.grad(b, (feat, weight))
    assert a.dtype == torch.float64 and a.item() > 0.1
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for x, y in zip(ga, gb):
        assert x.abs().max() > 1e-3  # a gradient that can tell them apart
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_the_check_can_fail():
    # Another margin on one side only must show: the comparison is sensitive to Δ and the α factors.
    feat, weight, ids = _leaves(seed=3)
    a = _fastreid_circle(feat, weight, ids, margin=0.35)
    b = _val_v1(feat, weight, ids, margin=0.5)
    assert abs(a.item() - b.item()) > 1e-3


def test_the_two_heads_give_the_same_loss_on_the_same_input():
    # The stock head with CircleSoftmax and the identity-viewpoint head with V=1, same weights and
    # input, BNNeck in training mode (batch statistics): the whole training path, not only the layer.
    torch.manual_seed(0)
    common = dict(feat_dim=12, embedding_dim=0, neck_feat="before", pool_type="GlobalAvgPool",
                  with_bnneck=True, norm_type="BN")
    stock = EmbeddingHead(num_classes=10, cls_type="CircleSoftmax", scale=GAMMA, margin=M, **common).double()
    ours = IdentityViewpointHead(num_identities=10, num_viewpoints=1, scale=GAMMA, cls_type="Linear",
                                 margin=0.0, **common).double()
    ours.load_state_dict(stock.state_dict())
    stock.train()
    ours.train()
    x = torch.randn(16, 12, 2, 2, dtype=torch.float64)
    ids = torch.randint(0, 10, (16,))
    a = cross_entropy_loss(stock(x, ids)["cls_outputs"], ids, eps=0.0)
    out = ours(x, ids)
    b = partition_loss(out["cosine"], ids, torch.zeros_like(ids), GAMMA, M)
    ga = torch.autograd.grad(a, stock.weight)[0]
    gb = torch.autograd.grad(b, ours.weight)[0]
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


def test_fastreid_divides_by_the_samples_with_non_zero_loss():
    # float32, C=200: sample 0 has cosine 1 to its own center and 0 to every other (gap 2 γ m² = 24),
    # so its loss rounds to exactly 0 and FastReID's mean is over the other N-1 samples.
    n, c = 8, 200
    cosine = torch.zeros(n, c)
    cosine[0, 0] = 1.0
    g = torch.Generator().manual_seed(0)
    cosine[1:] = torch.rand(n - 1, c, generator=g) * 0.6 - 0.3
    ids = torch.arange(n)
    logits = CircleSoftmax(c, GAMMA, M)(cosine.clone(), ids)
    per_sample = F.cross_entropy(logits, ids, reduction="none")
    assert per_sample[0].item() == 0.0 and (per_sample[1:] > 0).all()
    theirs = cross_entropy_loss(logits, ids, eps=0.0)
    ours = partition_loss(cosine[:, :, None], ids, torch.zeros_like(ids), GAMMA, M)
    torch.testing.assert_close(theirs, ours * n / (n - 1), rtol=1e-6, atol=0)
    assert theirs.item() > ours.item() * 1.1
