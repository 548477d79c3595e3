"""Trains scikit-learn's LogisticRegression on the matrix a Rust test wrote, as the reference
the linfa model is held to: standardised on the training rows, C=1 (L2), lbfgs.

Usage: sklearn_logistic.py MATRIX.parquet -> JSON {"auc": validation ROC AUC, "p": [...]}
"""
import json
import sys

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

table = pq.read_table(sys.argv[1])
features = [c for c in table.column_names if c.startswith("f_")]
x = np.column_stack([table[c].to_numpy() for c in features])
y = table["label"].to_numpy()
split = np.array(table["split"].to_pylist())
train, valid = split == "train", split == "validate"
scaler = StandardScaler().fit(x[train])
model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=5000, tol=1e-10)
model.fit(scaler.transform(x[train]), y[train])
p = model.predict_proba(scaler.transform(x[valid]))[:, 1]
print(json.dumps({"auc": roc_auc_score(y[valid], p), "p": p.tolist()}))
