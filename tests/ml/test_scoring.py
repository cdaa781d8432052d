"""Scoring against scikit-learn on a public labelled dataset it ships:
Wisconsin breast cancer (569 rows, 30 features). Same stratified splits,
same standardisation, same objective (L2, C = 1); our validation AUC must
be within 0.01 of scikit-learn's LogisticRegression on every split. Brier
scores and calibration error are reported side by side."""

import numpy as np

import mlref


def test_breast_cancer_auc_against_sklearn():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    import time

    x, y = load_breast_cancer(return_X_y=True)
    seeds = range(20) if mlref.full_form() else range(5)
    rows, gaps = [], []
    for seed in seeds:
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y,
                                              random_state=seed)
        t0 = time.process_time()
        scaler = StandardScaler().fit(xtr)
        clf = LogisticRegression(C=1.0, max_iter=10000).fit(scaler.transform(xtr), ytr)
        p = clf.predict_proba(scaler.transform(xte))[:, 1]
        ref_ms = (time.process_time() - t0) * 1e3
        ours = mlref.ml_eval("logreg", {
            "C": 1.0, "x": xtr.tolist(), "y": ytr.tolist(),
            "x_valid": xte.tolist(), "y_valid": yte.tolist()})[0]
        assert "error" not in ours, ours
        v = ours["validation"]
        ref_auc = roc_auc_score(yte, p)
        gaps.append(abs(v["auc"] - ref_auc))
        rows.append([seed, v["auc"], ref_auc, v["brier"], brier_score_loss(yte, p),
                     v["ece"], ours["fit_ms"], ref_ms,
                     float(np.max(np.abs(np.array(ours["weights"]) - clf.coef_[0])))])
        # Our own stratified split (logreg_train) does as well.
    own = mlref.ml_eval("logreg", {"C": 1.0, "x": x.tolist(), "y": y.tolist()})[0]
    mlref.print_table(
        "Logistic regression, breast cancer (validation 25%, stratified)",
        ["split", "AUC ours", "AUC sklearn", "Brier ours", "Brier sklearn",
         "ECE ours", "CPU ms ours", "CPU ms sklearn", "max |w diff|"], rows)
    print(f"  our own split (logreg_train): AUC {own['validation']['auc']:.4f}, "
          f"Brier {own['validation']['brier']:.4f}, n_train {own['n_train']}")
    assert max(gaps) <= 0.01, rows
    assert own["validation"]["auc"] >= 0.97


def test_too_small_to_train_says_so():
    one_class = mlref.ml_eval("logreg", {"x": [[1.0], [2.0], [3.0]] * 10, "y": [1] * 30})[0]
    assert one_class["error"] == "the labels hold a single class"
    few = mlref.ml_eval("logreg", {"x": [[float(i)] for i in range(30)],
                                   "y": [1, 1, 1] + [0] * 27})[0]
    assert few["error"].startswith("too few rows")
