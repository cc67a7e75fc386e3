"""Hugging Face hub ids for model directories: download and upload.

`resolve_model_dir` turns ``owner/name`` (when no such directory exists here) into a
downloaded snapshot (`huggingface_hub.snapshot_download`: the hub cache and ``HF_HUB_OFFLINE``
are honoured); `push_model_dir` uploads a directory (`HfApi.upload_folder`). Only a model
directory's own files (`cner.models.modeldir.MODEL_FILES`) travel either way; what a
directory holds and how transformers reads it are `cner.models.modeldir`'s and its helpers'.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from cner.errors import ModelError
from cner.models.modeldir import (CARD, META, MODEL_FILES, WEIGHTS, read_meta, render_card,
                                  rewrite_model_dir)
from cner.models.weights import is_cner_layout

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[\w./-]+)?")


def looks_like_repo_id(name: str) -> bool:
    """``owner/name`` (optionally ``@revision``): what a hub model id looks like. A path that
    exists here is never read as one (`resolve_model_dir` checks first)."""
    return bool(REPO_ID.fullmatch(name)) and not name.startswith((".", "-"))


def _offline() -> bool:
    """Whether downloads are off, read from the environment now: huggingface_hub reads it
    once, when it is imported, which a test or a long-lived process may have done before."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if value is not None:
        return value.strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE)


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """The local directory for ``model``: itself when it exists (or does not look like a hub
    id), else a snapshot of the hub repository ``owner/name[@revision]``, downloaded into the
    hub cache (``HF_HUB_CACHE``) or found there. Offline (``HF_HUB_OFFLINE=1``) with no
    cached copy, or no such repository, is a one-line `ModelError`."""
    path = Path(model)
    name = os.fspath(model)
    if path.exists() or not isinstance(model, str) or not looks_like_repo_id(name):
        return path
    repo_id, _, revision = name.partition("@")
    folder = _download(name, repo_id, revision)
    if not (folder / META).is_file():
        raise ModelError(f"the Hugging Face model {repo_id} is not a cner model (no "
                         f"{META}); cner loads directories written by cner train")
    return folder


def _download(name: str, repo_id: str, revision: str) -> Path:
    """The snapshot of ``repo_id`` (cner's files only); every way it can fail is a one-line
    `ModelError` that says what to do (``name``: the id as the user gave it)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError,
                                            LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
    except ImportError as exc:  # pragma: no cover - a transformers dependency
        raise ModelError(f"no directory {name} here, and huggingface_hub, needed to download "
                         f"it from the hub, cannot be imported: {exc}") from None
    offline = _offline()
    cache = os.environ.get("HF_HUB_CACHE") or None  # read now, not when the hub was imported
    try:
        return Path(snapshot_download(repo_id, revision=revision or None, cache_dir=cache,
                                      allow_patterns=MODEL_FILES, local_files_only=offline))
    except LocalEntryNotFoundError:
        if offline:
            raise ModelError(f"no directory {name} here, and the Hugging Face model {repo_id} is "
                             "not in the hub cache while HF_HUB_OFFLINE is set: download it "
                             "once with network access, or pass a local model directory"
                             ) from None
        raise ModelError(f"no directory {name} here, and the Hugging Face hub cannot be reached "
                         f"to download {repo_id} (no cached copy either)") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise ModelError(f"no directory {name} here, and no Hugging Face model {repo_id} "
                         "(or it is private or gated: log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise ModelError(f"the Hugging Face model {repo_id} has no revision {revision!r}"
                         ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelError(f"cannot download the Hugging Face model {repo_id}: {_first_line(exc)}"
                         ) from None


def _first_line(exc: Exception) -> str:
    """The first line of a hub error (they run to many lines of HTTP detail)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def push_model_dir(directory: str | os.PathLike, repo_id: str, *, private: bool = False,
                   token: str | None = None, commit_message: str | None = None, api=None) -> str:
    """Upload the model directory ``directory`` to the hub repository ``repo_id`` (created
    if missing, `HfApi.create_repo`; files sent by `HfApi.upload_folder`); returns the
    repository's URL.

    What is uploaded is the directory's own files (`MODEL_FILES`), with the model card written
    again to name ``repo_id`` in its examples; a directory saved by an earlier cner is written
    in the current layout first (so that transformers can read the upload). cner files the
    repository holds but the directory does not (a ``bigrams.txt`` of an earlier upload) are
    deleted in the same commit."""
    directory = Path(directory)
    meta = read_meta(directory)  # a complete model directory, or a one-line ModelError
    if not REPO_ID.fullmatch(repo_id) or "@" in repo_id:
        raise ModelError(f"{repo_id!r} is not a hub repository id; expected owner/name")
    try:
        staging = Path(tempfile.mkdtemp(prefix=".cner-push-", dir=directory.parent))
    except OSError:  # a read-only parent (the hub cache): the system's temporary folder
        staging = Path(tempfile.mkdtemp(prefix="cner-push-"))
    try:
        stage = _stage(directory, staging / "model", repo_id)
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        return _upload(api, stage, directory, repo_id, private=private, token=token,
                       commit_message=commit_message or f"cner {meta.task} model")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage(directory: Path, stage: Path, repo_id: str) -> Path:
    """``stage``: what is uploaded, the directory's files in the current layout (linked
    where they are, rewritten from an earlier layout) with a card that names ``repo_id``."""
    if is_cner_layout(directory / WEIGHTS):
        stage.mkdir()
        for name in MODEL_FILES:
            if name != CARD and (directory / name).is_file():
                _link_or_copy(directory / name, stage / name)
    else:
        rewrite_model_dir(directory, stage)
        (stage / CARD).unlink(missing_ok=True)
    (stage / CARD).write_text(render_card(stage, model_ref=repo_id), "utf-8")
    return stage


def _upload(api, stage: Path, directory: Path, repo_id: str, *, private: bool,
            token: str | None, commit_message: str) -> str:
    """One commit of ``stage``'s files, deleting the cner files the repository has and the
    stage does not; returns the repository's URL."""
    from huggingface_hub.errors import HfHubHTTPError

    present = sorted(p.name for p in stage.iterdir() if p.is_file())
    stale = [name for name in MODEL_FILES if name not in present]
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, token=token,
                              repo_type="model")
        api.upload_folder(repo_id=repo_id, folder_path=str(stage), repo_type="model",
                          token=token, allow_patterns=present, delete_patterns=stale or None,
                          commit_message=commit_message)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelError(f"cannot upload {directory} to {repo_id}: {_first_line(exc)}") from None
    return str(url)
