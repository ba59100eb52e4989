"""Load lead exports, check they can be learned from, and split them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.model_selection import train_test_split

from leadml.errors import DataError
from leadml.schema import DateReading, datetime_series
from leadml.settings import check_local_store

#: Like Dynamics 365's lead scoring, refuse to learn from fewer examples of either outcome.
MIN_PER_CLASS = 40

_POSITIVE_WORDS = ("1", "1.0", "true", "yes", "y", "won", "converted", "closed won", "success")

PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})


def check_output_path(path: Path) -> None:
    """Refuse, before any work, a file name `write_leads` cannot write."""
    if path.suffix.lower() not in (".csv", *PARQUET_SUFFIXES):
        raise DataError(f"cannot write {path}: use a .csv or .parquet file name")


def write_leads(frame: pd.DataFrame, path: Path) -> None:
    """Write leads as Parquet or CSV, by the file name's suffix."""
    check_output_path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def is_database_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def load_leads(source: str | Path, query: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file, or run `query` against an SQLAlchemy database URL."""
    text = str(source)
    if is_database_url(text):
        frame = _read_sql(text, query)
        check_unique_columns(frame.columns, "the query")
        return frame
    path = readable_file(text)
    kind = "Parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "CSV"
    try:
        if kind == "Parquet":
            frame = pd.read_parquet(path)
            check_unique_columns(frame.columns, str(path))
        else:
            separator, encoding = csv_dialect(path)
            check_unique_columns(csv_header(path, separator, encoding), str(path))
            frame = pd.read_csv(path, low_memory=False, sep=separator, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise DataError(f"cannot read {path}: the file is empty; export the leads again") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as error:
        raise _unreadable(path, kind, error) from None
    if frame.empty:
        raise DataError(f"{path} has no rows; export the leads again")
    frame.columns = [str(c).strip() for c in frame.columns]
    release_unused_memory()
    return frame


def sample_positions(n_rows: int, limit: int, seed: int) -> np.ndarray:
    """Row positions 0..n_rows-1: all of them when there are at most `limit`, else `limit` of
    them drawn at random with `seed` (without replacement), in their original order."""
    if n_rows <= limit:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=limit, replace=False))


def release_unused_memory() -> None:
    """Hand back to the system the memory pyarrow's allocator keeps for reuse.

    pandas keeps text in Arrow buffers; reading a file and taking parts of a frame leave freed
    buffers in the allocator (about 150 MB after reading a million leads), which would count in
    the peak memory of everything after.
    """
    pa.default_memory_pool().release_unused()


def readable_file(source: str | Path) -> Path:
    """`source` as a path, refused in one line unless it is a file that exists."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"cannot read {path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"cannot read {path}: it is a folder; give a CSV or Parquet file")
    return path


def _unreadable(path: Path, kind: str, error: BaseException) -> DataError:
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DataError(f"cannot read {path} as {kind}: {first_line}; check the file format")


def csv_header(path: Path, separator: str, encoding: str) -> list[str]:
    """The column names on a CSV file's first line, as written (pandas renames duplicates)."""
    header = pd.read_csv(path, sep=separator, encoding=encoding, header=None, nrows=1, dtype=str)
    return ["" if pd.isna(name) else str(name) for name in header.iloc[0]] if len(header) else []


def check_unique_columns(columns: Iterable[object], where: str) -> None:
    """Refuse two columns with one name (after trimming spaces): which one would be the lead's?"""
    names = pd.Index([str(c).strip() for c in columns])
    repeated = sorted(set(names[names.duplicated()]))
    if repeated:
        shown = ", ".join(repr(name) for name in repeated[:5])
        raise DataError(
            f"{where} has more than one column named {shown}; rename or drop the duplicates"
        )


def iter_lead_chunks(source: str | Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Read a CSV or Parquet file in chunks of at most `chunk_rows` rows."""
    path = readable_file(source)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        # Deferred: pyarrow's Parquet reader is only needed for Parquet files.
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
            check_unique_columns(parquet.schema_arrow.names, str(path))
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        except (pa.ArrowException, OSError) as error:
            raise _unreadable(path, "Parquet", error) from None
        return
    try:
        separator, encoding = csv_dialect(path)
        check_unique_columns(csv_header(path, separator, encoding), str(path))
        for chunk in pd.read_csv(
            path, chunksize=chunk_rows, low_memory=False, sep=separator, encoding=encoding
        ):
            if chunk.empty:  # a file with a header only has no leads
                continue
            chunk.columns = [str(c).strip() for c in chunk.columns]
            yield chunk
    except pd.errors.EmptyDataError:
        raise DataError(f"cannot read {path}: the file is empty; export the leads again") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        raise _unreadable(path, "CSV", error) from None


CSV_DELIMITERS = (",", ";", "\t", "|")


def csv_dialect(path: Path) -> tuple[str, str]:
    """Separator and encoding of a CSV export, from its first line.

    Spreadsheets in many locales write ';' (or tabs), and Excel often saves Windows-1252 text;
    the separator is the one the header line uses most, the encoding UTF-8 (with or without a
    byte-order mark) when the start of the file decodes as such, else Windows-1252.
    """
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if b"\x00" in head:
        raise DataError(
            f"cannot read {path} as CSV: it is not a text file; give a CSV or Parquet file"
        )
    first_line = head.split(b"\n", 1)[0]
    try:
        header = first_line.decode("utf-8-sig")
        encoding = "utf-8-sig"
        head[: head.rfind(b"\n") + 1 or len(head)].decode("utf-8-sig")
    except UnicodeDecodeError:
        header, encoding = first_line.decode("cp1252", errors="replace"), "cp1252"
    return detect_separator(header), encoding


def detect_separator(header_line: str) -> str:
    """The separator a CSV header line uses most (',' when it uses none)."""
    counts = {sep: header_line.count(sep) for sep in CSV_DELIMITERS}
    separator = max(CSV_DELIMITERS, key=lambda sep: counts[sep])
    return separator if counts[separator] else ","


def _read_sql(url: str, query: str | None) -> pd.DataFrame:
    if not query:
        raise DataError(
            f"{url.split('://')[0]} URL given without a query; add --query 'SELECT ...'"
        )
    # Deferred: SQLAlchemy (and its dialects) only load when leads come from a database.
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    # SQLite would answer a mistyped file name with a new, empty database and "no such table".
    check_local_store(url, what="database", setting="--data", create=False)
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise _query_failure(error) from None
    try:
        with engine.connect() as connection:
            frame = pd.read_sql_query(text(query), connection)
    except (SQLAlchemyError, pd.errors.DatabaseError, ImportError, ValueError) as error:
        raise _query_failure(error) from None
    finally:
        engine.dispose()
    if frame.empty:
        raise DataError("the query returned no rows; check its WHERE clause")
    return frame


def _query_failure(error: BaseException) -> DataError:
    # pandas wraps the driver's error ("Execution failed on sql '...': (sqlite3...) near
    # "SELEC": syntax error"); the driver's own words are what the user needs.
    cause = getattr(error, "orig", None) or error.__cause__ or error
    reason = str(getattr(cause, "orig", None) or cause).splitlines()[0]
    return DataError(f"cannot run the query: {reason}; check the URL and the query")


def _label_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def default_positive_label(values: Sequence[object]) -> str | None:
    """Guess the positive outcome among two target values (1, yes, true, won...)."""
    labels = [_label_text(v) for v in values]
    for word in _POSITIVE_WORDS:
        if word in labels:
            return word
    return None


def target_vector(series: pd.Series, positive: str | None) -> tuple[np.ndarray, str]:
    """0/1 outcomes from a target column, and the positive label used."""
    present = series.dropna()
    distinct = sorted({_label_text(v) for v in present.unique()})
    name = series.name
    if len(distinct) != 2:
        shown = ", ".join(distinct[:5]) + (" ..." if len(distinct) > 5 else "")
        raise DataError(
            f"target column {name!r} must have exactly two values, found {len(distinct)}"
            f" ({shown}); choose a yes/no outcome column"
        )
    if positive is None:
        positive = default_positive_label(distinct)
        if positive is None:
            raise DataError(
                f"cannot tell which value of {name!r} means converted ({', '.join(distinct)});"
                " pass --positive VALUE"
            )
    else:
        positive = _label_text(positive)
        if positive not in distinct:
            raise DataError(
                f"--positive {positive!r} is not a value of {name!r} ({', '.join(distinct)});"
                " pass one of them"
            )
    # Each distinct value is read once: a million leads have two or three of them.
    codes, values = pd.factorize(series, use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(
            f"target column {name!r} is empty in {int((codes < 0).sum())} rows;"
            " drop those rows or fill in the outcome"
        )
    is_positive = np.array([_label_text(v) == positive for v in values], dtype=bool)
    return is_positive[codes].astype(int), positive


def drop_open_leads(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """Leads whose outcome is still empty are open, not lost: they are left out of training."""
    outcome = frame[target]
    has_outcome = outcome.notna() & (outcome.astype("string").str.strip() != "").fillna(False)
    n_open = int((~has_outcome).sum())
    if n_open == 0:
        return frame, 0
    return frame[has_outcome.to_numpy()].reset_index(drop=True), n_open


def outcome_leads(
    frame: pd.DataFrame, target: str, positive: str | None, *, min_leads: int, source: str
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The leads of `frame` with an outcome, their 0/1 outcomes and how many were still open.

    Refuses a frame without the outcome column, with fewer than `min_leads` closed leads, or
    whose closed leads all have the same outcome (nothing to compare a model with).
    """
    if target not in frame.columns:
        shown = ", ".join(str(c) for c in frame.columns[:12])
        raise DataError(
            f"{source} has no outcome column {target!r}; pass the outcome column with --target"
            f" (columns: {shown}{' ...' if frame.shape[1] > 12 else ''})"
        )
    frame, n_open = drop_open_leads(frame, target)
    if len(frame) < min_leads:
        raise DataError(
            f"{source} has {len(frame)} leads with an outcome in {target!r} ({n_open} still open);"
            f" monitoring needs at least {min_leads}: wait for more outcomes or give a longer period"
        )
    outcomes = frame[target].map(lambda v: str(v).strip().lower()).unique()
    if len(outcomes) == 1:
        raise DataError(
            f"every lead with an outcome in {source} has the same outcome ({outcomes[0]!r});"
            " monitoring needs converted and lost leads: give a longer period"
        )
    y, _ = target_vector(frame[target], positive)
    return frame, y, n_open


def check_training_frame(
    frame: pd.DataFrame,
    target: str,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    named_columns: Sequence[str] = (),
    time_reading: DateReading | None = None,
) -> None:
    """Refuse, with a one-line reason, a frame that cannot be learned from."""
    columns = set(frame.columns)
    if target not in columns:
        raise DataError(f"target column {target!r} not found; columns are: {_column_list(frame)}")
    for option, column in (("--id-column", id_column), ("--time-column", time_column)):
        if column is not None and column not in columns:
            raise DataError(f"{option} {column!r} not found; columns are: {_column_list(frame)}")
    for column in named_columns:
        if column not in columns:
            raise DataError(f"column {column!r} not found; columns are: {_column_list(frame)}")
    if id_column is not None:
        duplicated = frame[id_column].duplicated(keep=False)
        if duplicated.any():
            example = frame.loc[duplicated, id_column].iloc[0]
            raise DataError(
                f"{int(duplicated.sum())} rows share an id in {id_column!r} (e.g. {example!r});"
                " remove duplicate leads before training"
            )
    if time_column is not None:
        moments = datetime_series(frame[time_column], time_reading)
        if moments.notna().mean() < 0.9:
            raise DataError(
                f"--time-column {time_column!r} is not a date in"
                f" {int(moments.isna().sum())} rows; give a column of dates"
            )


def check_class_counts(y: np.ndarray, minimum: int = MIN_PER_CLASS) -> None:
    positives = int(y.sum())
    negatives = int(len(y) - positives)
    if positives < minimum or negatives < minimum:
        raise DataError(
            f"too few examples to learn from: {positives} converted and {negatives} not;"
            f" at least {minimum} of each are needed"
        )


def _column_list(frame: pd.DataFrame, limit: int = 12) -> str:
    names = [str(c) for c in frame.columns]
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


@dataclass(frozen=True)
class Split:
    """Row positions of each part of a training frame."""

    fit: np.ndarray
    calibrate: np.ndarray
    holdout: np.ndarray
    by_time: bool


def split_leads(
    frame: pd.DataFrame,
    y: np.ndarray,
    *,
    time_column: str | None = None,
    holdout_share: float = 0.2,
    calibration_share: float = 0.2,
    seed: int = 0,
    time_reading: DateReading | None = None,
) -> Split:
    """Hold out the most recent leads when a time column exists, else a stratified sample.

    The calibration part (none with `calibration_share=0`) is carved from what remains the same
    way, so a calibrator sees leads the model did not learn from and, with time, leads closer to
    the future; `train_model` needs none: it calibrates on out-of-fold predictions. Day-month
    dates in the time column are read the one way `time_reading` says (see
    `leadml.schema.decide_date_reading`), so the order of the leads is the same for every row.
    """
    positions = np.arange(len(frame))
    if time_column is not None:
        moments = datetime_series(frame[time_column], time_reading)
        order = positions[np.argsort(moments.to_numpy(dtype="datetime64[ns]"), kind="stable")]
        n_holdout = max(1, round(len(order) * holdout_share))
        rest, holdout = order[:-n_holdout], order[-n_holdout:]
        n_calibrate = round(len(rest) * calibration_share)
        fit, calibrate = rest[: len(rest) - n_calibrate], rest[len(rest) - n_calibrate :]
        for part, label in ((fit, "training"), (calibrate, "calibration"), (holdout, "holdout")):
            if len(part) and len(np.unique(y[part])) < 2:
                raise DataError(
                    f"the {label} part of the time split has only one outcome;"
                    " train without --time-column or with more history"
                )
        return Split(np.sort(fit), np.sort(calibrate), np.sort(holdout), by_time=True)
    rest, holdout = train_test_split(
        positions, test_size=holdout_share, stratify=y, random_state=seed
    )
    if calibration_share == 0.0:
        return Split(np.sort(rest), np.array([], dtype=int), np.sort(holdout), by_time=False)
    fit, calibrate = train_test_split(
        rest, test_size=calibration_share, stratify=y[rest], random_state=seed
    )
    return Split(np.sort(fit), np.sort(calibrate), np.sort(holdout), by_time=False)
