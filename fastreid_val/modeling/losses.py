"""The Viewpoint-Aware Loss (VAL) as pure functions: partition loss (Eq. 3, 4, 7) and reunion loss (Eq. 5).

Shape legend:
    N  batch size
    C  identities (identity classes)
    V  viewpoints per identity (viewpoint subclasses); C x V identity-viewpoint classes
    d  feature dimension

``L_VA = L_P + λ L_R`` (Eq. 6) is assembled by :class:`fastreid_val.modeling.val_loss.ViewpointAwareLoss`,
which holds γ, m, λ and the other ``MODEL.VAL`` settings.
"""
import torch
import torch.nn.functional as F

__all__ = ["partition_loss", "reunion_loss", "assign_viewpoints", "multi_boundary_logits"]


def assign_viewpoints(cosine: torch.Tensor, identities: torch.Tensor, viewpoints: torch.Tensor) -> torch.Tensor:
    """Viewpoint subclass of each sample; an unknown viewpoint (-1) goes to the nearest sub-center.

    A sample without a viewpoint label is assigned to the sub-center of its own identity that it is
    most similar to: ``argmax_k s_{y_i, k}``. The choice carries no gradient (it is an index). This
    lets partly labelled data, or a dataset with no viewpoint labels at all, train with VAL.

    Args:
        cosine: [N, C, V] cosine similarities ``s_{j,k}``.
        identities: [N] int64 identity labels ``y_i`` in ``0..C-1``.
        viewpoints: [N] int64 viewpoint labels ``v_i`` in ``0..V-1``, or -1 for unknown (not checked
            here: see below).
    Returns:
        [N] int64 viewpoint subclasses in ``0..V-1``.
    """
    n = cosine.shape[0]
    # Labels are checked where they enter, by the dataset (ViewpointDataset: -1..V-1); a check here
    # would read the device every training step.
    own = cosine.detach()[torch.arange(n, device=cosine.device), identities]  # [N, V]
    return torch.where(viewpoints >= 0, viewpoints, own.argmax(dim=1))


def multi_boundary_logits(cosine: torch.Tensor, identities: torch.Tensor, margin: float) -> torch.Tensor:
    """φ(j, k) of Eq. 7: positive form for every subclass of the sample's identity, negative otherwise.

    ``j = y_i``: ``φ = [O_p - s]_+ (s - Δ_p)``, ``O_p = 1 + m``, ``Δ_p = 1 - m``
    ``j ≠ y_i``: ``φ = [s - O_n]_+ (s - Δ_n)``, ``O_n = -m``, ``Δ_n = m``

    The ``[·]_+`` factors are detached (constants for back-propagation), as in Circle loss, whose
    recipe Eq. 7 follows. Every viewpoint subclass of the own identity, not only the target one,
    gets the positive form: that is what makes the boundary "plain" between viewpoints of one
    identity (it asks only ``s_{y,v} > s_{y,k}``) and strict between identities (it asks
    ``(s_{y,v} - 1)^2 + s_{j,k}^2 < 2 m^2``).

    Args:
        cosine: [N, C, V]; identities: [N] int64; margin: m.
    Returns:
        [N, C, V] φ, same dtype and device as ``cosine``.
    """
    n, c, _ = cosine.shape
    own_identity = F.one_hot(identities, c).to(torch.bool)[:, :, None]  # [N, C, 1]
    s = cosine.detach()
    alpha_p = torch.clamp_min(1.0 + margin - s, 0.0)  # [O_p - s]_+
    alpha_n = torch.clamp_min(s + margin, 0.0)  # [s - O_n]_+
    positive = alpha_p * (cosine - (1.0 - margin))
    negative = alpha_n * (cosine - margin)
    return torch.where(own_identity, positive, negative)


def partition_loss(cosine: torch.Tensor, identities: torch.Tensor, viewpoints: torch.Tensor,
                   scale: float = 48.0, margin: float = 0.5, multi_boundary: bool = True) -> torch.Tensor:
    """Partition loss ``L_P`` (Eq. 3): cross-entropy over the C x V identity-viewpoint classes.

    ``L_P = -1/N Σ_i log( exp(γ φ(y_i, v_i)) / Σ_{j,k} exp(γ φ(j, k)) )``

    with ``φ(j, k) = s_{j,k}`` (Eq. 4, "L_P w/o MB", a NormSoftmax over C x V classes) or the
    multi-decision boundary of Eq. 7 (``multi_boundary=True``). Computed with log-sum-exp.

    Args:
        cosine: [N, C, V] cosine similarity ``s_{j,k} = cos(x_i, M_{j,k})``.
        identities: [N] int64 identity labels in ``0..C-1``.
        viewpoints: [N] int64 viewpoint labels in ``0..V-1``; -1 = unknown (see
            :func:`assign_viewpoints`).
        scale: γ. margin: m (unused without the multi-decision boundary).
        multi_boundary: use Eq. 7.
    Returns:
        Scalar tensor, the mean over the batch; 0 for an empty batch.
    """
    if cosine.dim() != 3:
        raise ValueError(f"cosine must be [N, C, V], got shape {tuple(cosine.shape)}")
    n, c, v = cosine.shape
    if n == 0:
        return cosine.sum() * 0.0
    subclass = assign_viewpoints(cosine, identities, viewpoints)
    target = identities * v + subclass  # flat index of class (y_i, v_i) in the C*V layout
    phi = multi_boundary_logits(cosine, identities, margin) if multi_boundary else cosine
    logits = scale * phi.reshape(n, c * v)
    return F.cross_entropy(logits, target)


def reunion_loss(centers: torch.Tensor, reduction: str = "sum", normalized: bool = False) -> torch.Tensor:
    """Reunion loss ``L_R`` (Eq. 5): pulls the V sub-centers of each identity together.

    ``L_R = - Σ_j 2 / (V (V - 1)) Σ_{k<l} cos(M_{j,k}, M_{j,l})``

    Eq. 5 prints a double sum over all (k, l) with the normaliser ``2 / (V (V-1))``, which counts
    unordered pairs of distinct viewpoints; we therefore sum over ``k < l`` (the mean pairwise cosine
    of an identity's sub-centers, in [-1, 1]). The sum over identities is literal (``reduction="sum"``):
    each center's gradient then does not shrink with C, consistent with the paper's finding that
    λ = 0.1 already matters. ``reduction="mean"`` divides by C. V = 1 has no pairs and gives 0.

    Args:
        centers: [C, V, d] raw (unnormalised) sub-center weights ``M``.
        reduction: "sum" or "mean" over identities.
        normalized: ``centers`` are already L2-normalised (the head's normalised weight), which
            spares a second normalisation of the whole classifier.
    Returns:
        Scalar tensor.
    """
    if centers.dim() != 3:
        raise ValueError(f"centers must be [C, V, d], got shape {tuple(centers.shape)}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    c, v, _ = centers.shape
    if v < 2 or c == 0:
        return centers.sum() * 0.0
    unit = centers if normalized else F.normalize(centers, dim=-1)
    # Σ_{k<l} cos(M_{j,k}, M_{j,l}) = (||Σ_k u_{j,k}||² - Σ_k ||u_{j,k}||²) / 2 with u = M / ||M||, and
    # ||u_{j,k}||² = 1: one pass over [C, V, d] instead of V(V-1)/2 sliced products (and their
    # zero-filled slice gradients). A center that is exactly zero (||u|| = 0) shifts the value by a
    # constant 1/2 per such center and leaves the gradient unchanged.
    total = unit.sum(dim=1)  # [C, d]
    pairs = 0.5 * ((total * total).sum(dim=-1) - v)  # [C]
    per_identity = -pairs * (2.0 / (v * (v - 1)))  # [C]
    return per_identity.sum() if reduction == "sum" else per_identity.mean()
