"""The AllInOne training losses in PyTorch, written from fast-reid's code
(the independent peer of src/train/): CosFace (CosSoftmax head + plain
cross-entropy) and batch-hard soft-margin triplet. Functions take and return
torch tensors inside the autograd graph."""
import torch
import torch.nn.functional as F


def cosface(feat, weight, labels, s, m):
    """fast-reid CosSoftmax: F.linear(F.normalize(feat), F.normalize(W)), margin m
    subtracted at the target, times s; then F.cross_entropy (mean)."""
    logits = F.linear(F.normalize(feat), F.normalize(weight))
    m_hot = torch.zeros_like(logits).scatter_(1, labels[:, None], m)
    return F.cross_entropy((logits - m_hot) * s, labels)


def triplet(emb, targets, margin=0.0):
    """fast-reid triplet_loss(norm_feat=False, hard_mining=True): Euclidean
    distances, hardest positive / negative, soft margin when margin == 0 (margin
    ranking with 0.3 if that overflows)."""
    n = emb.size(0)
    sq = emb.pow(2).sum(1, keepdim=True).expand(n, n)
    dist = (sq + sq.t() - 2 * emb @ emb.t()).clamp(min=1e-12).sqrt()
    is_pos = targets.view(n, 1).eq(targets.view(1, n)).float()
    is_neg = 1 - is_pos
    dist_ap, _ = torch.max(dist * is_pos, dim=1)
    dist_an, _ = torch.min(dist * is_neg + is_pos * 1e9, dim=1)
    y = torch.ones_like(dist_an)
    if margin > 0:
        return F.margin_ranking_loss(dist_an, dist_ap, y, margin=margin)
    loss = F.soft_margin_loss(dist_an - dist_ap, y)
    if loss == float("inf"):
        loss = F.margin_ranking_loss(dist_an, dist_ap, y, margin=0.3)
    return loss
