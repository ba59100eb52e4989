"""Model files are code: a bundle is verified with a key held outside it before anything opens.

The attacks are the ones a person who can write a model folder (or the artifact store) has: put a
pickle that runs code in place of pipeline.joblib (and fix up the sha256 in model.json, which is
what the folder used to vouch with), edit model.json, put another signed bundle in place.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import joblib
import pytest
from mlflow import MlflowClient

from conftest import TrainedModel
from leadml.bundle import (
    METADATA_FILE,
    PIPELINE_FILE,
    SIGNATURE_FILE,
    read_bundle,
    read_info,
    sign_folder,
    write_info,
)
from leadml.errors import ModelError
from leadml.registry import BUNDLE_DIGEST_TAG, use_tracking
from leadml.scoring import Scorer
from leadml.settings import Settings
from leadml.signing import KEY_ENV, KEY_FILE_ENV, SigningKey, signing_key, verifying_key


class _TouchMarker:
    """Unpickling this opens (creates) the marker file: a stand-in for any shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def crafted_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(_TouchMarker(marker)))
    joblib.load(path)  # the payload is live: loading it unchecked runs it ...
    assert marker.exists()
    marker.unlink()  # ... and the test starts again without the marker


def poisoned_copy(trained: TrainedModel, folder: Path, marker: Path) -> Path:
    """The exported champion with a code-running pipeline.joblib, and model.json's sha256 made
    to match it (so a check of model.json against the pipeline alone would pass)."""
    shutil.copytree(trained.export_dir, folder)
    crafted_pickle(folder / PIPELINE_FILE, marker)
    info = read_info(folder)
    from leadml.bundle import sha256_of

    write_info(folder, replace(info, pipeline_sha256=sha256_of(folder / PIPELINE_FILE)))
    return folder


def test_a_crafted_pickle_is_refused_and_never_runs(trained: TrainedModel, tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    folder = poisoned_copy(trained, tmp_path / "model", marker)
    with pytest.raises(ModelError, match="changed after"):
        Scorer.load(folder)
    assert not marker.exists()


def test_a_crafted_pickle_signed_with_another_key_is_refused(
    trained: TrainedModel, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    folder = poisoned_copy(trained, tmp_path / "model", marker)
    attacker = SigningKey(b"an attacker's own key, 32 chars or more", "attacker")
    sign_folder(folder, attacker)  # a complete, consistent signature: only the key differs
    with pytest.raises(ModelError, match="does not verify"):
        Scorer.load(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit",
    [
        lambda info: replace(
            info, reference_quantiles=tuple(q * 0.5 for q in info.reference_quantiles)
        ),
        lambda info: replace(info, metrics={**info.metrics, "roc_auc": 0.99}),
        lambda info: replace(info, version="999"),
    ],
    ids=["quantiles", "metrics", "version"],
)
def test_an_edited_model_json_is_refused(trained: TrainedModel, tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    write_info(folder, edit(read_info(folder)))
    with pytest.raises(ModelError, match=f"{METADATA_FILE} changed after"):
        read_bundle(folder)


def test_an_unsigned_bundle_is_refused(trained: TrainedModel, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    (folder / SIGNATURE_FILE).unlink()
    with pytest.raises(ModelError, match="not signed"):
        read_bundle(folder)


def test_a_signed_bundle_loads_and_scores_as_trained(trained: TrainedModel, tmp_path: Path) -> None:
    bundle = read_bundle(trained.export_dir)
    assert bundle.info.version == trained.version
    holdout = bundle.holdout()
    assert len(holdout) == len(trained.result.holdout)


def test_without_a_key_nothing_loads_and_no_key_is_made(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere" / "model-signing.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(missing))
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ModelError, match="no model signing key"):
        read_bundle(trained.export_dir)
    assert not missing.exists()
    # Training does make one (private), and says where.
    key = signing_key(Settings())
    assert missing.exists() and (missing.stat().st_mode & 0o077) == 0
    assert verifying_key(Settings()).secret == key.secret
    # ... and a model signed with the session's key does not verify with this new one.
    with pytest.raises(ModelError, match="does not verify"):
        read_bundle(trained.export_dir)


def test_a_short_key_or_a_key_file_others_may_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "too short")
    with pytest.raises(ModelError, match="at least 32"):
        verifying_key(Settings())
    monkeypatch.delenv(KEY_ENV)
    loose = tmp_path / "loose.key"
    loose.write_text("k" * 64)
    os.chmod(loose, 0o666)
    monkeypatch.setenv(KEY_FILE_ENV, str(loose))
    with pytest.raises(ModelError, match="chmod 600"):
        verifying_key(Settings())


def test_a_key_file_inside_the_model_folder_is_refused(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(trained.export_dir, folder)
    inside = folder / "key"
    inside.write_text("k" * 64)
    os.chmod(inside, 0o600)
    monkeypatch.setenv(KEY_FILE_ENV, str(inside))
    sign_folder(folder, SigningKey(b"k" * 64, "the same key, given directly"))
    with pytest.raises(ModelError, match="inside the model folder"):
        read_bundle(folder)


def test_the_registry_pins_each_versions_bundle(trained: TrainedModel, tmp_path: Path) -> None:
    """Another validly signed bundle put in place of a version's files is refused: the version's
    tag pins the digest of the files it was registered with."""
    use_tracking(trained.tracking_uri)
    client = MlflowClient()
    tags = client.get_model_version(trained.model_name, trained.version).tags
    pinned = tags[BUNDLE_DIGEST_TAG]
    assert read_bundle(trained.export_dir).digest != pinned  # the export carries its version
    client.set_model_version_tag(trained.model_name, trained.version, BUNDLE_DIGEST_TAG, "0" * 64)
    try:
        with pytest.raises(ModelError, match="not the ones the registry pins"):
            Scorer.load(trained.champion_uri, tracking_uri=trained.tracking_uri)
    finally:
        client.set_model_version_tag(trained.model_name, trained.version, BUNDLE_DIGEST_TAG, pinned)
    assert Scorer.load(trained.champion_uri, tracking_uri=trained.tracking_uri).info.version == (
        trained.version
    )


def test_signature_json_names_every_file(trained: TrainedModel) -> None:
    signature = json.loads((trained.export_dir / SIGNATURE_FILE).read_text())
    assert set(signature["files"]) == {PIPELINE_FILE, METADATA_FILE, "holdout.parquet"}
    assert signature["algorithm"] == "hmac-sha256" and len(signature["hmac"]) == 64
