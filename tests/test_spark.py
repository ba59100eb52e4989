"""`leadml score --engine spark` on a real local Spark session: the same numbers, grades and MQL
decisions as the pandas path, and the same clear errors.

One session serves the module (Spark takes seconds to start); it is skipped, saying why, only
where no Java runtime can be found. pyspark itself is installed by `make test` (the `spark` extra),
so its absence is a failure, not a skip.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_testkit import assert_one_line_error, run_cli_streams
from pyspark.sql import SparkSession

from conftest import TrainedModel
from leadml import demo
from leadml.cli import main
from leadml.policy import PolicyBook
from leadml.scoring import Scorer
from leadml.spark import (
    SCORED_COLUMNS,
    iter_ledger_batches,
    java_missing,
    score_with_spark,
    spark_session,
)
from leadml.store import Store

pytestmark = pytest.mark.spark

LEADS = 1500


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    why = java_missing()
    if why is not None:
        pytest.skip(f"Spark needs Java: {why} (scripts/system-deps.sh installs it on Debian)")
    session = spark_session(
        "local[1]",
        {
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "1",
            # Several batches per task, so each worker reuses the scorer it unpickled once.
            "spark.sql.execution.arrow.maxRecordsPerBatch": "400",
            "spark.driver.memory": "512m",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def leads_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spark") / "leads.parquet"
    demo.write_demo_leads(path, LEADS, seed=7)
    return path


@pytest.fixture(scope="module")
def policy_db(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An app database holding a stored MQL policy, so the policy version is a real one."""
    url = f"sqlite:///{tmp_path_factory.mktemp('spark-db') / 'app.db'}"
    with pytest.raises(SystemExit) as done:
        main(
            [
                "threshold",
                "--policy",
                "fixed",
                "--cutoff",
                "0.35",
                "--apply",
                "--reason",
                "spark test",
                "--model",
                str(trained.export_dir),
                "--database-url",
                url,
                "--tracking-uri",
                trained.tracking_uri,
            ]
        )
        raise SystemExit(0)
    assert done.value.code in (0, None)
    return url


def _score(
    capsys: pytest.CaptureFixture[str],
    trained: TrainedModel,
    source: Path,
    output: Path,
    database_url: str,
    *extra: str,
) -> tuple[int, str]:
    """Exit code and stderr (progress and errors)."""
    code, _, err = _score_streams(capsys, trained, source, output, database_url, *extra)
    return code, err


def _score_streams(
    capsys: pytest.CaptureFixture[str],
    trained: TrainedModel,
    source: Path,
    output: Path,
    database_url: str,
    *extra: str,
) -> tuple[int, str, str]:
    """Exit code, stdout (the results) and stderr."""
    return run_cli_streams(
        [
            "score",
            str(source),
            "-o",
            str(output),
            "--model",
            str(trained.export_dir),
            "--database-url",
            database_url,
            "--tracking-uri",
            trained.tracking_uri,
            *extra,
        ],
        capsys,
    )


def _both_engines(
    capsys: pytest.CaptureFixture[str],
    trained: TrainedModel,
    source: Path,
    tmp_path: Path,
    database_url: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    code, err = _score(capsys, trained, source, tmp_path / "pandas.parquet", database_url)
    assert code == 0, err
    code, err = _score(
        capsys, trained, source, tmp_path / "spark.parquet", database_url, "--engine", "spark"
    )
    assert code == 0, err
    assert "on Spark" in " ".join(err.split())
    return pd.read_parquet(tmp_path / "pandas.parquet"), pd.read_parquet(tmp_path / "spark.parquet")


def _assert_same_scores(on_pandas: pd.DataFrame, on_spark: pd.DataFrame) -> None:
    assert list(on_spark.columns) == [demo.ID_COLUMN, *SCORED_COLUMNS]
    assert len(on_spark) == len(on_pandas) == on_spark[demo.ID_COLUMN].nunique()
    on_spark = on_spark.assign(**{demo.ID_COLUMN: on_spark[demo.ID_COLUMN].astype(str)})
    on_pandas = on_pandas.assign(**{demo.ID_COLUMN: on_pandas[demo.ID_COLUMN].astype(str)})
    joined = on_pandas.merge(on_spark, on=demo.ID_COLUMN, suffixes=("", "_spark"), validate="1:1")
    assert len(joined) == len(on_pandas)
    np.testing.assert_allclose(
        joined["probability_spark"], joined["probability"], rtol=0, atol=1e-9
    )
    for column in ("score", "percentile", "grade", "is_mql"):
        assert (joined[f"{column}_spark"].to_numpy() == joined[column].to_numpy()).all(), column
    assert set(joined["model_version_spark"].astype(str)) == set(
        joined["model_version"].astype(str)
    )
    assert set(joined["policy_version_spark"]) == set(joined["policy_version"])


def test_spark_scores_parquet_as_the_pandas_path(
    spark: SparkSession,
    trained: TrainedModel,
    leads_parquet: Path,
    policy_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    on_pandas, on_spark = _both_engines(capsys, trained, leads_parquet, tmp_path, policy_db)
    _assert_same_scores(on_pandas, on_spark)
    # The stored policy decided, not the default: its version is on every lead, and its
    # cut-off draws the line.
    assert set(on_spark["policy_version"]) == {1}
    mql = on_spark["is_mql"].to_numpy()
    assert 0 < mql.sum() < len(on_spark)
    assert (on_spark["probability"].to_numpy()[mql] >= 0.35).all()
    assert set(on_spark["model_version"]) == {trained.version}


def test_spark_scores_csv_as_the_pandas_path(
    spark: SparkSession,
    trained: TrainedModel,
    leads_parquet: Path,
    policy_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv = tmp_path / "leads.csv"
    demo.write_demo_leads(csv, 600, seed=11)
    on_pandas, on_spark = _both_engines(capsys, trained, csv, tmp_path, policy_db)
    _assert_same_scores(on_pandas, on_spark)


def _field_part(err: str) -> str:
    """What the error says about the field, without where it is (a file row or a lead id)."""
    found = re.search(r"(field '.*)$", " ".join(err.split()))
    assert found, err
    return found.group(1)


@pytest.mark.parametrize("problem", ["missing column", "wrong type"])
def test_bad_input_is_the_same_clear_error_on_both_engines(
    spark: SparkSession,
    trained: TrainedModel,
    policy_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem: str,
) -> None:
    leads = demo.generate_leads(400, seed=5)
    if problem == "missing column":
        leads = leads.drop(columns=["time_on_site_sec"])
        fragments = ["field 'time_on_site_sec'", "column is required but missing"]
    else:
        leads["email_opens"] = leads["email_opens"].astype(object)
        leads.loc[7, "email_opens"] = "lots"
        fragments = ["field 'email_opens'", "'lots' (numeric expected)"]
    source = tmp_path / "bad.csv"
    leads.to_csv(source, index=False)
    messages = []
    for engine, output in (("pandas", "out.parquet"), ("spark", "out-spark.parquet")):
        code, err = _score(
            capsys, trained, source, tmp_path / output, policy_db, "--engine", engine
        )
        assert_one_line_error(code, err, str(source), *fragments, alone=False)
        assert "Py4J" not in err and "SparkException" not in err
        messages.append(_field_part(err))
    assert messages[0] == messages[1]
    if problem == "wrong type":
        lead = leads.loc[7, demo.ID_COLUMN]
        assert f"lead {lead!r}" in " ".join(err.split())


def test_missing_java_is_one_line(
    trained: TrainedModel,
    leads_parquet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    code, err = _score(
        capsys, trained, leads_parquet, tmp_path / "o.parquet", "sqlite://", "--engine", "spark"
    )
    assert_one_line_error(code, err, "needs Java", "default-jre-headless")


def test_missing_pyspark_is_one_line(
    trained: TrainedModel,
    leads_parquet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # what `import pyspark` meets without it
    code, err = _score(
        capsys, trained, leads_parquet, tmp_path / "o.parquet", "sqlite://", "--engine", "spark"
    )
    assert_one_line_error(code, err, "needs pyspark", "pip install 'leadml[spark]'")


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--engine", "spark", "--reasons"], ["--reasons is not available with --engine spark"]),
        (["--master", "local[2]"], ["--master and --conf are Spark settings"]),
        (["--engine", "dask"], ["--engine 'dask' is unknown"]),
    ],
)
def test_engine_options_are_checked(
    trained: TrainedModel,
    leads_parquet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    fragments: list[str],
) -> None:
    code, err = _score(capsys, trained, leads_parquet, tmp_path / "o.parquet", "sqlite://", *extra)
    assert_one_line_error(code, err, *fragments)


def test_spark_output_must_be_parquet(
    spark: SparkSession,
    trained: TrainedModel,
    leads_parquet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = _score(
        capsys, trained, leads_parquet, tmp_path / "o.csv", "sqlite://", "--engine", "spark"
    )
    assert_one_line_error(code, err, "writes Parquet", alone=False)
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("not Spark's")
    code, err = _score(capsys, trained, leads_parquet, keep, "sqlite://", "--engine", "spark")
    assert_one_line_error(code, err, "will not replace", "notes.txt", alone=False)
    assert (keep / "notes.txt").exists()


def test_ledger_batches_carry_each_lead_as_scored(
    spark: SparkSession, trained: TrainedModel, leads_parquet: Path, tmp_path: Path
) -> None:
    scorer = Scorer.load(trained.export_dir)
    store = Store.from_url(f"sqlite:///{tmp_path / 'app.db'}")
    store.migrate()
    policy = PolicyBook(store).active(scorer)
    store.close()
    output = str(tmp_path / "with-features.parquet")
    done = score_with_spark(
        str(leads_parquet), output, scorer, policy, spark=spark, with_features=True
    )
    assert done.leads == LEADS
    batches = list(iter_ledger_batches(spark, output, rows=600))
    assert [len(b) for b in batches] == [600, 600, 300]
    leads = pd.read_parquet(leads_parquet).set_index(demo.ID_COLUMN)
    seen = set()
    for lead in (row for batch in batches for row in batch):
        seen.add(lead[demo.ID_COLUMN])
        assert set(lead["features"]) == set(scorer.schema.feature_names)
    assert seen == set(leads.index)
    sample = batches[1][17]
    original = leads.loc[sample[demo.ID_COLUMN], scorer.schema.feature_names]
    for name, value in sample["features"].items():
        if pd.isna(original[name]):
            assert value is None, name
        else:
            assert value == original[name], name


def test_the_rest_of_leadml_works_without_pyspark() -> None:
    blocked = "import sys; sys.modules['pyspark'] = None; import leadml.cli, api.main; print('ok')"
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_spark_records_every_score_in_the_ledger_as_the_pandas_path_does(
    capsys: pytest.CaptureFixture[str],
    trained: TrainedModel,
    leads_parquet: Path,
    tmp_path: Path,
) -> None:
    ledgers = {}
    for engine in ("pandas", "spark"):
        url = f"sqlite:///{tmp_path / engine}.db"
        extra = ("--engine", "spark") if engine == "spark" else ()
        code, out, err = _score_streams(
            capsys, trained, leads_parquet, tmp_path / f"{engine}.parquet", url, *extra
        )
        assert code == 0, err
        assert f"{LEADS:,} scores recorded in the ledger" in " ".join(out.split())
        store = Store.from_url(url)
        ledgers[engine] = store.ledger_frame().set_index("lead_id").sort_index()
        store.close()
    on_pandas, on_spark = ledgers["pandas"], ledgers["spark"]
    assert on_spark.index.is_unique and list(on_spark.index) == list(on_pandas.index)
    assert len(on_spark) == LEADS
    np.testing.assert_allclose(on_spark["probability"], on_pandas["probability"], rtol=0, atol=1e-9)
    for column in ("score", "grade", "is_mql", "model_version", "source"):
        assert (on_spark[column].to_numpy() == on_pandas[column].to_numpy()).all(), column
    names = Scorer.load(trained.export_dir).schema.feature_names
    for lead_id in on_spark.index[::97]:
        as_scored = on_spark.at[lead_id, "features"]
        assert set(as_scored) == set(names)
        expected = on_pandas.at[lead_id, "features"]
        assert {n: as_scored[n] for n in names} == {n: expected.get(n) for n in names}, lead_id
    # The ledger's copy of the features does not end up in the user's output.
    assert "features" not in pd.read_parquet(tmp_path / "spark.parquet").columns


def test_spark_draws_exploration_leads_as_the_pandas_path_does(
    spark: SparkSession, trained: TrainedModel, leads_parquet: Path, tmp_path: Path
) -> None:
    scorer = Scorer.load(trained.export_dir)
    store = Store.from_url(f"sqlite:///{tmp_path / 'app.db'}")
    store.migrate()
    share = 0.3
    policy = replace(PolicyBook(store).active(scorer), exploration_share=share)
    store.close()
    output = str(tmp_path / "explored.parquet")
    score_with_spark(str(leads_parquet), output, scorer, policy, spark=spark)
    scored = pd.read_parquet(output)
    assert list(scored.columns) == [
        demo.ID_COLUMN,
        *SCORED_COLUMNS[:5],
        "exploration",
        "selection_probability",
        *SCORED_COLUMNS[5:],
    ]
    below = ~scored["is_mql"]
    assert not scored.loc[~below, "exploration"].any()
    explored = scored.loc[below, "exploration"].mean()
    assert abs(explored - share) < 4 * np.sqrt(share * (1 - share) / below.sum())
    assert scored["selection_probability"].tolist() == [
        1.0 if mql else share for mql in scored["is_mql"]
    ]
