"""Builds the runtime conformance matrix: models trained with scikit-learn, XGBoost and LightGBM,
exported to ONNX with each converter's default options, plus the scoring rows (with missing
values) and onnxruntime's answers for them.

Usage: python make_models.py OUT_DIR
Writes OUT_DIR/<case>.onnx, OUT_DIR/<case>.csv (the rows to score) and
OUT_DIR/<case>.expected.json ({output name: flat list, "shape": ...}) for every case.
"""

import json
import sys
from pathlib import Path

import lightgbm
import numpy as np
import onnxruntime as ort
import pandas as pd
import xgboost
from onnxmltools import convert_lightgbm, convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

# Every case the matrix holds; main() checks it built exactly these.
CASE_NAMES = [
    "logreg_binary", "logreg_multiclass",
    "rf_classifier_binary", "gb_classifier_binary", "xgb_classifier_binary", "lgbm_classifier_binary",
    "rf_classifier_multiclass", "gb_classifier_multiclass", "xgb_classifier_multiclass", "lgbm_classifier_multiclass",
    "rf_regressor", "gb_regressor", "xgb_regressor", "lgbm_regressor",
    "pipeline_impute_scale_onehot",
    # Default exports never use these; the same trees with the attribute changed exercise them.
    "tree_classifier_multiclass_probit", "gb_classifier_multiclass_softmax_zero", "rf_regressor_average",
]

ROWS_TRAIN = 2000
ROWS_SCORE = 3000
FEATURES = 8
MISSING_SHARE = 0.05


def with_missing(x, rng):
    x = x.copy()
    x[rng.random(x.shape) < MISSING_SHARE] = np.nan
    return x


def classification(classes, rng, seed):
    x, y = make_classification(
        n_samples=ROWS_TRAIN + ROWS_SCORE, n_features=FEATURES, n_informative=5,
        n_redundant=1, n_classes=classes, n_clusters_per_class=1, random_state=seed)
    return x[:ROWS_TRAIN].astype(np.float32), y[:ROWS_TRAIN], x[ROWS_TRAIN:].astype(np.float32)


def regression(rng, seed):
    x, y = make_regression(n_samples=ROWS_TRAIN + ROWS_SCORE, n_features=FEATURES, noise=5.0, random_state=seed)
    return x[:ROWS_TRAIN].astype(np.float32), y[:ROWS_TRAIN], x[ROWS_TRAIN:].astype(np.float32)


def skl(model, x):
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, x.shape[1]]))])


def frame(x):
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])


def cases(rng):
    """(name, onnx model, scoring frame) for every cell of the matrix."""
    out = []
    # Linear models cannot take missing values: their rows are complete.
    for classes in (2, 3):
        x, y, score = classification(classes, rng, 10 + classes)
        lr = LogisticRegression(max_iter=1000).fit(x, y)
        out.append((f"logreg_{'binary' if classes == 2 else 'multiclass'}", skl(lr, x), frame(score)))
    for classes in (2, 3):
        x, y, score = classification(classes, rng, 20 + classes)
        kind = "binary" if classes == 2 else "multiclass"
        rf = RandomForestClassifier(n_estimators=30, max_depth=8, random_state=1).fit(x, y)
        out.append((f"rf_classifier_{kind}", skl(rf, x), frame(with_missing(score, rng))))
        gb = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=1).fit(x, y)
        out.append((f"gb_classifier_{kind}", skl(gb, x), frame(with_missing(score, rng))))
        xg = xgboost.XGBClassifier(n_estimators=40, max_depth=4).fit(with_missing(x, rng), y)
        out.append((f"xgb_classifier_{kind}", convert_xgboost(xg, initial_types=[("input", MlFloat([None, FEATURES]))]), frame(with_missing(score, rng))))
        lg = lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1).fit(with_missing(x, rng), y)
        out.append((f"lgbm_classifier_{kind}", convert_lightgbm(lg, initial_types=[("input", MlFloat([None, FEATURES]))]), frame(with_missing(score, rng))))
    x, y, score = regression(rng, 30)
    rf = RandomForestRegressor(n_estimators=30, max_depth=8, random_state=1).fit(x, y)
    out.append(("rf_regressor", skl(rf, x), frame(with_missing(score, rng))))
    gb = GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=1).fit(x, y)
    out.append(("gb_regressor", skl(gb, x), frame(with_missing(score, rng))))
    xg = xgboost.XGBRegressor(n_estimators=40, max_depth=4).fit(with_missing(x, rng), y)
    out.append(("xgb_regressor", convert_xgboost(xg, initial_types=[("input", MlFloat([None, FEATURES]))]), frame(with_missing(score, rng))))
    lg = lightgbm.LGBMRegressor(n_estimators=40, num_leaves=15, verbose=-1).fit(with_missing(x, rng), y)
    out.append(("lgbm_regressor", convert_lightgbm(lg, initial_types=[("input", MlFloat([None, FEATURES]))]), frame(with_missing(score, rng))))
    out.append(pipeline_case(rng))
    by_name = {name: (model, frame) for name, model, frame in out}
    # PROBIT magnifies the last-ulp differences of summing trees in another order near 0 and 1,
    # so it runs on one tree, whose leaf probabilities reach it unsummed.
    x, y, score = classification(3, rng, 50)
    tree = DecisionTreeClassifier(max_depth=6, min_samples_leaf=20, random_state=1).fit(x, y)
    by_name["tree_classifier_multiclass"] = (skl(tree, x), frame(with_missing(score, rng)))
    out.append(variant(by_name, "tree_classifier_multiclass", "tree_classifier_multiclass_probit", post_transform=b"PROBIT"))
    out.append(variant(by_name, "gb_classifier_multiclass", "gb_classifier_multiclass_softmax_zero", post_transform=b"SOFTMAX_ZERO"))
    out.append(variant(by_name, "rf_regressor", "rf_regressor_average", aggregate_function=b"AVERAGE", scale_weights=True))
    return out


def variant(by_name, source, name, scale_weights=False, **attributes):
    """A copy of a case's model with tree-ensemble attributes changed. `scale_weights`
    multiplies the leaf weights by the number of trees (SUM of averages becomes AVERAGE)."""
    import copy
    import onnx
    model, frame = by_name[source]
    model = copy.deepcopy(model)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    trees = len(set(onnx.helper.get_attribute_value(next(a for a in node.attribute if a.name == "nodes_treeids"))))
    for a in list(node.attribute):
        if a.name in attributes:
            node.attribute.remove(a)
        elif scale_weights and a.name == "target_weights":
            weights = [w * trees for w in a.floats]
            node.attribute.remove(a)
            node.attribute.append(onnx.helper.make_attribute("target_weights", weights))
    for key, value in attributes.items():
        node.attribute.append(onnx.helper.make_attribute(key, value))
    return (name, model, frame)


def pipeline_case(rng):
    """Imputer + scaler on numeric columns, one-hot on string columns, then a classifier;
    one ONNX input per column, as skl2onnx exports a DataFrame."""
    x, y, score = classification(2, rng, 40)
    def to_frame(m):
        df = pd.DataFrame({f"num{i}": with_missing(m[:, i], rng) for i in range(5)})
        df["region"] = np.array(["north", "south", "east", "west"])[(np.abs(m[:, 5]) * 3).astype(int) % 4]
        df["product"] = np.array(["card", "loan", "mortgage"])[(np.abs(m[:, 6]) * 5).astype(int) % 3]
        return df
    train = to_frame(x)
    numeric = [f"num{i}" for i in range(5)]
    pipe = Pipeline([
        ("prep", ColumnTransformer([
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "product"]),
        ])),
        ("clf", LogisticRegression(max_iter=1000)),
    ]).fit(train, y)
    types = [(c, FloatTensorType([None, 1])) for c in numeric] + [(c, StringTensorType([None, 1])) for c in ("region", "product")]
    model = to_onnx(pipe, initial_types=types)
    scoring = to_frame(score)
    # Unseen categories are part of the scoring rows.
    scoring.loc[scoring.index[::97], "region"] = "atlantis"
    return ("pipeline_impute_scale_onehot", model, scoring)


def feeds(session, df):
    inputs = session.get_inputs()
    if len(inputs) == 1:
        return {inputs[0].name: df.to_numpy(dtype=np.float32)}
    out = {}
    for i in inputs:
        col = df[i.name].to_numpy()
        out[i.name] = (col.astype(np.float32) if i.type == "tensor(float)" else col.astype(object)).reshape(-1, 1)
    return out


def expected(session, df):
    names = [o.name for o in session.get_outputs()]
    results = session.run(None, feeds(session, df))
    out = {}
    for name, value in zip(names, results):
        if isinstance(value, list):  # ZipMap: a list of {label: probability}
            keys = sorted(value[0].keys())
            value = np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
        value = np.asarray(value)
        out[name] = {"shape": list(value.shape), "dtype": str(value.dtype), "data": value.reshape(-1).tolist()}
    return out


def main():
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    manifest = []
    for name, model, score in cases(rng):
        path = out_dir / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        score.to_csv(out_dir / f"{name}.csv", index=False)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (out_dir / f"{name}.expected.json").write_text(json.dumps(expected(session, score)))
        manifest.append(name)
    assert manifest == CASE_NAMES, manifest
    (out_dir / "manifest.json").write_text(json.dumps(manifest))
    print(f"wrote {len(manifest)} models to {out_dir}")


if __name__ == "__main__":
    main()
