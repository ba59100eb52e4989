"""leadml's default `train_model` against the models a data scientist would build, same split.

Usage (the peers come from the `bench` extra: pip install -e '.[bench]'):

    python bench/quality.py                                   # everything: slow (FLAML 60 s each)
    python bench/quality.py --datasets xeducation demo --seeds 0 1 2 --peers lightgbm catboost
    python bench/quality.py --report                          # only rebuild the table and plot
    python bench/quality.py --redo leadml                     # leadml again, the peers kept

For each dataset and seed, leadml trains first; every peer then learns from exactly leadml's
non-holdout rows and the columns leadml uses (its schema after the leakage guard and the time
feature decision), prepared the same way (numbers as numbers, categories as codes that the peer
treats as categories where it can), and is scored on leadml's holdout. Results are appended to
bench/results/quality.csv one row at a time, so an interrupted run resumes where it stopped
(`--fresh` starts over); the table and the plot are rebuilt from that file.

Peers:
  lightgbm      LGBMClassifier() with default parameters, native categories
  hgb           HistGradientBoostingClassifier(), native categories (numeric codes above 255
                categories, which it cannot take natively)
  hgb_isotonic  the same in CalibratedClassifierCV(method="isotonic", cv=5)
  logistic      one-hot categories, median-imputed standardised numbers, LogisticRegression()
  catboost      CatBoostClassifier() with default parameters, categories as cat_features
  catboost_isotonic  the same in CalibratedClassifierCV(method="isotonic", cv=5)
  flaml         FLAML AutoML, 60 s budget (`--flaml-seconds`), ROC AUC metric
  flaml_isotonic     the same 60 s FLAML search; the configuration it chose (learner and
                hyperparameters) then refit in CalibratedClassifierCV(method="isotonic", cv=5),
                as hgb_isotonic. The search itself is not repeated inside the folds.

Every row's ECE is leadml.evaluate.holdout_metrics' (`expected_calibration_error`: 10
equal-frequency bins of the holdout's probabilities), the same function for leadml and peers.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from leadml import demo
from leadml.data import drop_open_leads, split_leads, target_vector
from leadml.evaluate import holdout_metrics, ranked_outcomes
from leadml.train import TrainConfig, TrainResult, train_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "quality.csv"
TABLE = HERE / "results" / "quality.md"
PLOT = HERE / "results" / "quality.png"
#: The public X Education export, next to the checkout (../shared/data/), found walking up.
X_EDUCATION = next(
    (
        folder / "shared" / "data" / "x_education_leads.csv"
        for folder in HERE.parents
        if (folder / "shared" / "data" / "x_education_leads.csv").exists()
    ),
    HERE.parents[1] / ".." / "shared" / "data" / "x_education_leads.csv",
)
PEERS = (
    "lightgbm",
    "hgb",
    "hgb_isotonic",
    "logistic",
    "catboost",
    "catboost_isotonic",
    "flaml",
    "flaml_isotonic",
)
METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top_decile", "top30_share")
DEMO_ROWS = 20_000


def x_education() -> tuple[pd.DataFrame, TrainConfig]:
    frame = pd.read_csv(X_EDUCATION, low_memory=False)  # read in place, never copied
    return frame, TrainConfig(target="Converted")


def demo_export(*variants: str) -> Callable[[], tuple[pd.DataFrame, TrainConfig]]:
    def load() -> tuple[pd.DataFrame, TrainConfig]:
        frame = (
            demo.generate_leads(DEMO_ROWS, seed=7, variants=variants)
            if variants
            else demo.generate_leads(DEMO_ROWS, seed=7)
        )
        return frame, TrainConfig(
            target=demo.TARGET, id_column=demo.ID_COLUMN, time_column=demo.TIME_COLUMN
        )

    return load


DATASETS: dict[str, Callable[[], tuple[pd.DataFrame, TrainConfig]]] = {
    "xeducation": x_education,
    "demo": demo_export(),
    # Every trap at once, the shape of a marketing funnel export: a time split, dates written
    # day first, a landing-page id with thousands of values, post-contact columns to find, and
    # a world that changes (Webinar leads convert better from 2024).
    "demo-traps": demo_export("post-contact", "day-first", "time-shift", "landing-page"),
}


def top_share(y: np.ndarray, proba: np.ndarray, share: float = 0.3) -> float:
    """Share of all conversions among the top `share` of leads by probability (ties averaged)."""
    _, y_tied = ranked_outcomes(y, proba)
    top = max(1, int(np.ceil(share * len(y) - 1e-9)))
    return float(np.sum(y_tied[:top]) / max(y.sum(), 1))


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    metrics = holdout_metrics(y, np.clip(proba, 0.0, 1.0))
    metrics["top30_share"] = top_share(y, proba)
    return {k: metrics[k] for k in METRICS}


# -- peers: each takes (X_learn, y_learn, X_holdout, categorical indices, seed, args) and gives
# P(converted) on the holdout, or (P(converted), a detail for the results' detail column)
Peer = Callable[[np.ndarray, np.ndarray, np.ndarray, list[int], int, argparse.Namespace], Any]


def _lightgbm(X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, _: Any):
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(verbose=-1, random_state=seed, n_jobs=1)
    model.fit(X, y, categorical_feature=cats or "auto")
    return np.asarray(model.predict_proba(H))[:, 1]


def _hgb_model(X: np.ndarray, cats: list[int], seed: int) -> HistGradientBoostingClassifier:
    native = [c for c in cats if np.nanmax(X[:, c], initial=0) < 255]
    mask = np.zeros(X.shape[1], dtype=bool)
    mask[native] = True
    return HistGradientBoostingClassifier(categorical_features=mask, random_state=seed)


def _hgb(X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, _: Any):
    return _hgb_model(X, cats, seed).fit(X, y).predict_proba(H)[:, 1]


def _hgb_isotonic(X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, _: Any):
    model = CalibratedClassifierCV(_hgb_model(X, cats, seed), method="isotonic", cv=5)
    return model.fit(X, y).predict_proba(H)[:, 1]


def _logistic(X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, _: Any):
    numeric = [i for i in range(X.shape[1]) if i not in set(cats)]
    encode = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                cats,
            ),
        ]
    )
    model = Pipeline([("encode", encode), ("classify", LogisticRegression(max_iter=2000))])
    return model.fit(X, y).predict_proba(H)[:, 1]


def _as_frame(X: np.ndarray, cats: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    for c in cats:
        frame[f"f{c}"] = frame[f"f{c}"].fillna(-1).astype(int).astype(str)
    return frame


class CatBoostDefault(ClassifierMixin, BaseEstimator):
    """CatBoostClassifier() with default parameters on one thread, as a scikit-learn classifier
    that CalibratedClassifierCV can clone (CatBoost's own cat_features parameter does not
    survive sklearn's clone)."""

    def __init__(self, cat_features: tuple[str, ...] = (), seed: int = 0) -> None:
        self.cat_features = cat_features
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> CatBoostDefault:
        from catboost import CatBoostClassifier

        self.model_ = CatBoostClassifier(
            verbose=0, random_seed=self.seed, thread_count=1, allow_writing_files=False
        )
        self.model_.fit(X, y, cat_features=list(self.cat_features))
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(X))


def _catboost_model(cats: list[int], seed: int) -> CatBoostDefault:
    return CatBoostDefault(tuple(f"f{c}" for c in cats), seed)


def _catboost(X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, _: Any):
    model = _catboost_model(cats, seed).fit(_as_frame(X, cats), y)
    return model.predict_proba(_as_frame(H, cats))[:, 1]


def _catboost_isotonic(
    X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, _: Any
):
    model = CalibratedClassifierCV(_catboost_model(cats, seed), method="isotonic", cv=5)
    return model.fit(_as_frame(X, cats), y).predict_proba(_as_frame(H, cats))[:, 1]


def _flaml_frame(matrix: np.ndarray, cats: list[int]) -> pd.DataFrame:
    out = _as_frame(matrix, cats)
    for c in cats:
        out[f"f{c}"] = out[f"f{c}"].astype("category")
    return out


def _flaml_search(X: np.ndarray, y: np.ndarray, cats: list[int], seed: int, args: Any) -> Any:
    from flaml import AutoML

    automl = AutoML()
    automl.fit(
        _flaml_frame(X, cats),
        y,
        task="classification",
        metric="roc_auc",
        time_budget=args.flaml_seconds,
        seed=seed,
        n_jobs=1,
        verbose=0,
    )
    return automl


def _flaml(X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, args: Any):
    automl = _flaml_search(X, y, cats, seed, args)
    return automl.predict_proba(_flaml_frame(H, cats))[:, 1]


class FlamlChoice(ClassifierMixin, BaseEstimator):
    """FLAML's chosen learner with its chosen hyperparameters, as a plain scikit-learn classifier
    (what CalibratedClassifierCV clones and refits in each fold), on FLAML-preprocessed rows."""

    def __init__(self, learner: Any = None, config: dict[str, Any] | None = None) -> None:
        self.learner = learner
        self.config = config

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> FlamlChoice:
        self.model_ = self.learner(task="binary", n_jobs=1, **(self.config or {}))
        self.model_.fit(X, y)
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(X))


def _flaml_isotonic(
    X: np.ndarray, y: np.ndarray, H: np.ndarray, cats: list[int], seed: int, args: Any
):
    automl = _flaml_search(X, y, cats, seed, args)
    choice = FlamlChoice(type(automl.model), automl.best_config)
    model = CalibratedClassifierCV(choice, method="isotonic", cv=5)
    model.fit(automl.preprocess(_flaml_frame(X, cats)), y)
    proba = model.predict_proba(automl.preprocess(_flaml_frame(H, cats)))[:, 1]
    chosen = ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in automl.best_config.items()
    )
    return proba, f"FLAML chose {automl.best_estimator}: {chosen}"


PEER_FITS: dict[str, Peer] = {
    "lightgbm": _lightgbm,
    "hgb": _hgb,
    "hgb_isotonic": _hgb_isotonic,
    "logistic": _logistic,
    "catboost": _catboost,
    "catboost_isotonic": _catboost_isotonic,
    "flaml": _flaml,
    "flaml_isotonic": _flaml_isotonic,
}


# -- running ----------------------------------------------------------------------------------
def _done() -> set[tuple[str, int, str]]:
    if not RESULTS.exists():
        return set()
    table = pd.read_csv(RESULTS)
    return set(zip(table.dataset, table.seed, table.model, strict=True))


def _append(row: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(RESULTS, mode="a", header=not RESULTS.exists(), index=False)
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
    print(shown, flush=True)


def run_per_seed(
    results: Path,
    jobs: Iterable[tuple[str, Callable[[], tuple[pd.DataFrame, TrainConfig]], Sequence[int]]],
    run_one: Callable[[pd.DataFrame, TrainConfig], list[dict[str, Any]]],
) -> None:
    """For each (export, its loader, seeds) and each seed not in `results` yet: the rows of
    `run_one(frame, config with that seed)`, appended to `results` one export-seed at a time (so
    an interrupted run resumes) and printed. The measuring scripts beside this one share it."""
    done: set[tuple[str, int]] = set()
    if results.exists():
        table = pd.read_csv(results)
        done = set(zip(table.export, table.seed, strict=True))
    for export, load, seeds in jobs:
        frame, base = load()
        for seed in seeds:
            if (export, seed) in done:
                continue
            config = TrainConfig(**{**vars(base), "seed": seed})  # type: ignore[arg-type]
            rows = [{"export": export, "seed": seed, **row} for row in run_one(frame, config)]
            pd.DataFrame(rows).to_csv(results, mode="a", header=not results.exists(), index=False)
            for row in rows:
                print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})


def run(args: argparse.Namespace) -> None:
    done = _done()
    for name in args.datasets:
        frame, base = DATASETS[name]()
        for seed in args.seeds:
            wanted = [p for p in args.peers if (name, seed, p) not in done]
            if (name, seed, "leadml") in done and not wanted:
                continue
            config = TrainConfig(**{**vars(base), "seed": seed})  # type: ignore[arg-type]
            started = time.perf_counter()
            result: TrainResult = train_model(frame, config)
            seconds = time.perf_counter() - started
            common = {"dataset": name, "seed": seed, "n_leads": len(frame)}
            if (name, seed, "leadml") not in done:
                _append(
                    {
                        **common,
                        "model": "leadml",
                        **scores(result.holdout_y, result.holdout_proba),
                        "fit_seconds": seconds,
                        "detail": f"{result.model_kind}; {result.calibration_method}"
                        + (
                            f"; time features {'kept' if result.time_features.kept else 'dropped'}"
                            if result.time_features
                            else ""
                        ),
                    }
                )
            else:
                _check_same_leadml(name, seed, scores(result.holdout_y, result.holdout_proba))
            preparer = result.pipeline.named_steps["prepare"]
            learn = _learn_rows(frame, result)
            X = preparer.transform(learn)
            y = _targets(learn, result)
            H = preparer.transform(result.holdout)
            cats = list(preparer.categorical_indices_)
            for peer in wanted:
                started = time.perf_counter()
                with threadpool_limits(limits=1):  # every peer on one thread, as leadml
                    fitted = PEER_FITS[peer](X, y, H, cats, seed, args)
                proba, detail = fitted if isinstance(fitted, tuple) else (fitted, "")
                _append(
                    {
                        **common,
                        "model": peer,
                        **scores(result.holdout_y, np.asarray(proba, dtype=float)),
                        "fit_seconds": time.perf_counter() - started,
                        "detail": detail,
                    }
                )


def _check_same_leadml(dataset: str, seed: int, retrained: dict[str, float]) -> None:
    """New peer rows beside kept leadml rows are comparable only if leadml still gives the same
    holdout (same split, columns and model): say so when it does not."""
    table = pd.read_csv(RESULTS)
    kept = table[(table.dataset == dataset) & (table.seed == seed) & (table.model == "leadml")]
    stored, now = float(kept.roc_auc.iloc[0]), retrained["roc_auc"]
    if abs(stored - now) > 1e-9:
        print(
            f"WARNING {dataset} seed {seed}: leadml now gives ROC AUC {now:.6f}, its kept row"
            f" {stored:.6f}; rerun with --redo leadml to compare like with like",
            flush=True,
        )


def _learn_rows(frame: pd.DataFrame, result: TrainResult) -> pd.DataFrame:
    """leadml's non-holdout rows with an outcome, recovered by the same split it used."""
    config = result.config
    leads, _ = drop_open_leads(frame, config.target)
    y, _ = target_vector(leads[config.target], config.positive)
    split = split_leads(
        leads,
        y,
        time_column=config.time_column,
        holdout_share=config.holdout_share,
        calibration_share=0.0,
        seed=config.seed,
        time_reading=(
            result.schema.column(config.time_column).date_reading if config.time_column else None
        ),
    )
    assert len(split.holdout) == len(result.holdout)
    return leads.iloc[split.fit].reset_index(drop=True)


def _targets(learn: pd.DataFrame, result: TrainResult) -> np.ndarray:
    y, _ = target_vector(learn[result.config.target], result.positive_label)
    return y


# -- the table and the plot -------------------------------------------------------------------
def report() -> None:
    table = pd.read_csv(RESULTS)
    summary = (
        table.groupby(["dataset", "model"])[[*METRICS, "fit_seconds"]]
        .agg(["mean", "std"])
        .reset_index()
    )
    seeds = table.groupby(["dataset", "model"]).seed.nunique().reset_index(name="seeds")
    lines = []
    for dataset, part in summary.groupby("dataset", sort=False):
        n_seeds = seeds[seeds.dataset == dataset].set_index("model").seeds
        lines += [
            f"### {dataset} ({int(table[table.dataset == dataset].n_leads.iloc[0]):,} leads)",
            "",
            "| model | seeds | ROC AUC | PR AUC | Brier | log loss | ECE | lift top 10 % |"
            " conversions in top 30 % | fit s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        order = ["leadml", *[p for p in PEERS if p in set(part.model)]]
        for model in order:
            row = part[part.model == model].iloc[0]

            def cell(metric: str, digits: int = 3, row: Any = row) -> str:
                mean, std = row[(metric, "mean")], row[(metric, "std")]
                text = f"{mean:.{digits}f}"
                return text + (f" ± {std:.{digits}f}" if np.isfinite(std) and std > 0 else "")

            lines.append(
                f"| {model} | {n_seeds[model]} | {cell('roc_auc')} | {cell('pr_auc')} |"
                f" {cell('brier')} | {cell('log_loss')} | {cell('ece')} |"
                f" {cell('lift_top_decile', 2)} | {cell('top30_share')} |"
                f" {row[('fit_seconds', 'mean')]:.1f} |"
            )
        lines.append("")
    TABLE.write_text("\n".join(lines))
    print("\n".join(lines))
    _plot(table)


def _plot(table: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table.dataset))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        part = table[table.dataset == dataset].groupby("model")[["roc_auc", "pr_auc", "ece"]].mean()
        for model, row in part.iterrows():
            leadml = model == "leadml"
            axis.scatter(
                row.roc_auc,
                row.pr_auc,
                s=60 + 2000 * row.ece,
                color="crimson" if leadml else "steelblue",
                alpha=0.8,
                zorder=3 if leadml else 2,
            )
            axis.annotate(f"{model}", (row.roc_auc, row.pr_auc), fontsize=8, xytext=(4, 3),
                          textcoords="offset points")  # fmt: skip
        axis.set_title(f"{dataset}: holdout, mean over seeds\n(marker area grows with ECE)")
        axis.locator_params(axis="x", nbins=5)  # four-decimal ticks overlap otherwise
        axis.set_xlabel("ROC AUC")
        axis.set_ylabel("PR AUC")
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    print(f"wrote {PLOT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--flaml-seconds", type=float, default=60.0)
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument(
        "--redo",
        nargs="+",
        default=[],
        choices=["leadml", *PEERS],
        help="forget these models' earlier rows on --datasets and --seeds (e.g. leadml after a"
        " change to its default; the peers learn from its split and columns, not its model)",
    )
    parser.add_argument("--report", action="store_true", help="only rebuild table and plot")
    args = parser.parse_args()
    if args.fresh and RESULTS.exists():
        RESULTS.unlink()
    if args.redo and RESULTS.exists():
        table = pd.read_csv(RESULTS)
        forget = (
            table.dataset.isin(args.datasets)
            & table.seed.isin(args.seeds)
            & table.model.isin(args.redo)
        )
        table[~forget].to_csv(RESULTS, index=False)
    if not args.report:
        run(args)
    report()


if __name__ == "__main__":
    main()
