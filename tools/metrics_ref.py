"""Reference implementations of the evaluation protocols of SPEC section 5,
written plainly from the descriptions of insightface's verification code and
fast-reid's evaluate_rank (full sorts, no shortcuts), with numpy and
scikit-learn. They are the peer of src/eval/ in tests/py/test_metrics_numpy.py.

Precision, as SPEC section 5 and src/eval/nn_internal.h:
- face verification: features L2-normalised in float64 (sklearn's normalize),
  squared Euclidean distances in float64;
- ReID / SOP: features L2-normalised in float64 and rounded to float32 (like
  fast-reid's F.normalize on float32 features), inner products of those
  float32 vectors evaluated in float64, distance = 1 - inner product.
  (fast-reid then casts the per-query CMC rows to float32 before averaging;
  we average in float64, the value the protocol defines.)
"""
import numpy as np
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

THRESHOLDS = np.arange(0, 4, 0.01)


# ---------------------------------------------------------------- face verification

def _accuracy(threshold, dist, actual_issame):
    """insightface calculate_accuracy: returns (tpr, fpr, acc)."""
    predict_issame = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict_issame, actual_issame))
    fp = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    fn = np.sum(np.logical_and(np.logical_not(predict_issame), actual_issame))
    tpr = 0.0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0.0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    acc = float(tp + tn) / dist.size
    return tpr, fpr, acc


def face_verification(feats, issame, nfolds=10):
    """feats [2P, D]: pair i = rows 2i, 2i+1. Returns percent accuracy, its std,
    the mean chosen threshold, per-fold values, and TPR/FPR over all pairs."""
    emb = normalize(np.asarray(feats, dtype=np.float64))
    e1, e2 = emb[0::2], emb[1::2]
    actual = np.asarray(issame).astype(bool)
    n = len(actual)
    dist = np.sum(np.square(np.subtract(e1, e2)), 1)
    indices = np.arange(n)
    # insightface's LFold: KFold(shuffle=False), or train = test = all for one fold
    folds = KFold(n_splits=nfolds, shuffle=False).split(indices) if nfolds > 1 else [(indices, indices)]
    accuracy, best_thr = [], []
    for train_set, test_set in folds:
        acc_train = np.zeros(len(THRESHOLDS))
        for k, t in enumerate(THRESHOLDS):
            _, _, acc_train[k] = _accuracy(t, dist[train_set], actual[train_set])
        best = int(np.argmax(acc_train))
        _, _, a = _accuracy(THRESHOLDS[best], dist[test_set], actual[test_set])
        accuracy.append(a)
        best_thr.append(THRESHOLDS[best])
    roc = np.array([_accuracy(t, dist, actual)[:2] for t in THRESHOLDS])
    accuracy = np.array(accuracy)
    return {
        "accuracy": float(np.mean(accuracy) * 100),
        "accuracy_std": float(np.std(accuracy) * 100),
        "threshold": float(np.mean(best_thr)),
        "fold_accuracy": (accuracy * 100).tolist(),
        "fold_threshold": [float(t) for t in best_thr],
        "tpr": roc[:, 0].tolist(),
        "fpr": roc[:, 1].tolist(),
    }


# ---------------------------------------------------------------- ReID

def l2norm_f32(x):
    """x / max(||x||, 1e-12) in float64, rounded to float32."""
    x = np.asarray(x, dtype=np.float64)
    n = np.sqrt(np.sum(x * x, axis=1))
    return (x / np.maximum(n, 1e-12)[:, None]).astype(np.float32)


def inner_f64(a, b, rows=64):
    """a @ b.T in float64, summed by numpy's own reduction (the same order for
    every element), not by BLAS: a BLAS dgemm may sum identical vectors in a
    different order at different tile positions, turning planted exact ties
    into 1-ulp non-ties depending on which BLAS is installed."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.empty((a.shape[0], b.shape[0]))
    for i in range(0, a.shape[0], rows):
        out[i:i + rows] = (a[i:i + rows, None, :] * b[None, :, :]).sum(-1)
    return out


def reid_distmat(qf, gf):
    return 1.0 - inner_f64(l2norm_f32(qf), l2norm_f32(gf))


def eval_func(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """fast-reid's evaluate_rank (python version), stable sort, float64 means."""
    num_q, num_g = distmat.shape
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_AP, all_INP = [], [], []
    num_valid_q = 0
    for q_idx in range(num_q):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = indices[q_idx]
        remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue  # no true match left: the query does not count
        cmc = raw_cmc.cumsum()
        pos_idx = np.where(raw_cmc == 1)
        max_pos_idx = np.max(pos_idx)
        all_INP.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
        cmc[cmc > 1] = 1
        cmc = cmc[:max_rank]
        if len(cmc) < max_rank:  # fewer kept items than max_rank: CMC stays at its last value
            cmc = np.concatenate([cmc, np.full(max_rank - len(cmc), cmc[-1])])
        all_cmc.append(cmc)
        num_valid_q += 1
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum() / np.arange(1.0, len(raw_cmc) + 1.0)
        all_AP.append((tmp_cmc * raw_cmc).sum() / num_rel)
    assert num_valid_q > 0, "Error: all query identities do not appear in gallery"
    all_cmc = np.asarray(all_cmc, dtype=np.float64).sum(0) / num_valid_q
    return all_cmc, float(np.mean(all_AP)), float(np.mean(all_INP)), num_valid_q


def reid(qf, q_pids, q_camids, gf, g_pids, g_camids, max_rank=50):
    cmc, mAP, mINP, valid = eval_func(reid_distmat(qf, gf), q_pids, g_pids, q_camids, g_camids, max_rank)
    at = lambda k: float(cmc[min(k, len(cmc)) - 1] * 100)
    return {"rank1": at(1), "rank5": at(5), "rank10": at(10), "mAP": mAP * 100, "mINP": mINP * 100,
            "num_valid": valid, "cmc": (cmc * 100).tolist()}


# ---------------------------------------------------------------- SOP Recall@K

def sop_recall(feats, labels, ks=(1, 10, 100, 1000)):
    """Leave-one-out Recall@K: each item queries all others, itself removed by
    index; ranked by similarity descending, ties by index."""
    xn = l2norm_f32(feats).astype(np.float64)
    labels = np.asarray(labels)
    sims = inner_f64(xn, xn)
    n = len(labels)
    first = np.full(n, -1)
    for i in range(n):
        order = np.argsort(-sims[i], kind="stable")
        order = order[order != i]
        m = np.nonzero(labels[order] == labels[i])[0]
        if len(m):
            first[i] = m[0]
    out = {f"recall@{k}": float(np.mean((first >= 0) & (first < k)) * 100) for k in ks}
    out["num_no_match"] = int(np.sum(first < 0))
    return out
