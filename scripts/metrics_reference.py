"""Reference values of the multi-label and regression metrics (issue 15), from scikit-learn and SciPy on
fixed, seeded predictions: writes crates/bertfit/tests/data/metrics_reference.json, which
crates/bertfit/src/metrics/{multilabel,regression}.rs compare against (within 1e-9).

Needs scikit-learn and scipy in the reference environment:
    ~/.cache/bertfit/ref-venv/bin/pip install scikit-learn scipy
    ~/.cache/bertfit/ref-venv/bin/python scripts/metrics_reference.py
"""
import json
import os

import numpy as np
import scipy
import sklearn
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    hamming_loss,
    label_ranking_average_precision_score,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "bertfit", "tests", "data", "metrics_reference.json")


def multilabel_case(rng, rows, labels, threshold):
    gold = (rng.random((rows, labels)) < 0.3).astype(int)
    gold[0, :] = 0                      # a row with no labels (allowed: the empty set)
    gold[1, :] = 1                      # a row with every label
    scores = np.round(rng.random((rows, labels)), 3)   # rounded: ties, which ranking metrics must handle
    scores[2, :] = 0.5                  # a row of equal scores
    pred = (scores >= threshold).astype(int)
    pred[3, :] = 0                      # a row predicting nothing
    out = {
        "gold": gold.tolist(), "scores": scores.tolist(), "pred": pred.tolist(),
        "subset_accuracy": accuracy_score(gold, pred),
        "hamming_loss": hamming_loss(gold, pred),
        "lrap": label_ranking_average_precision_score(gold, scores),
    }
    for avg in ("micro", "macro", "weighted", "samples"):
        p, r, f, _ = precision_recall_fscore_support(gold, pred, average=avg, zero_division=0)
        out[f"{avg}"] = {"precision": p, "recall": r, "f1": f}
    p, r, f, s = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
    out["per_label"] = {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(), "support": s.tolist()}
    assert abs(out["micro"]["f1"] - f1_score(gold, pred, average="micro", zero_division=0)) < 1e-15
    return out


def regression_case(rng, rows):
    gold = rng.normal(3.0, 1.5, rows)
    pred = gold + rng.normal(0.2, 0.8, rows)
    gold[:5] = np.round(gold[:5])       # ties in the targets (Spearman's average ranks)
    gold[5] = gold[0]
    pred[7] = pred[8]
    mse = mean_squared_error(gold, pred)
    return {
        "gold": gold.tolist(), "pred": pred.tolist(),
        "mse": mse, "rmse": float(np.sqrt(mse)), "mae": mean_absolute_error(gold, pred),
        "r2": r2_score(gold, pred), "pearson": float(pearsonr(gold, pred).statistic),
        "spearman": float(spearmanr(gold, pred).statistic),
    }


def main():
    rng = np.random.default_rng(15)
    ref = {
        "made_with": {"scikit-learn": sklearn.__version__, "scipy": scipy.__version__, "numpy": np.__version__},
        "multilabel": [multilabel_case(rng, 40, 5, 0.5), multilabel_case(rng, 200, 12, 0.35)],
        "regression": [regression_case(rng, 50), regression_case(rng, 500)],
    }
    with open(OUT, "w") as f:
        json.dump(ref, f, indent=None)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
