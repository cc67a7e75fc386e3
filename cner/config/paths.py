"""Where the paths of a config point: the config file's folder, ``$CNER_CORPORA``, the sample.

Paths (`PATH_KEYS`) written in a config file are relative to the file's folder, so that a
config works from any current directory and travels with the data beside it; paths given on
the command line (``--set``, ``--train``) are relative to the current directory, as a shell
user expects. A path may start with ``$CNER_CORPORA``: the public-corpora folder
(`corpora_root`). With no config file the built-in defaults name the sample corpus of the
cner source checkout (`SOURCE_ROOT`), wherever the command runs; `check_default_sample` says
what to pass where that checkout is not there (an installed wheel).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cner.config.schema import LOCAL_ENCODERS, PATH_KEYS, Config, DataConfig
from cner.errors import ConfigError

# The file name cner saves a run's config under (cner.models.modeldir.RUN_CONFIG). Its paths
# are absolute; those of runs saved before were relative to the directory training ran in,
# so they are not re-read against the run directory.
SAVED_CONFIG = "cner_config.yaml"

# The project checkout when cner is imported from its source (pip install -e .): the built-in
# defaults name its sample corpus, corpora/sample/, which is not package data.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
CORPORA_ENV = "CNER_CORPORA"
_CORPORA_VAR = re.compile(r"^\$(?:CNER_CORPORA\b|\{CNER_CORPORA\})")
_DATA_PATHS = ("train", "dev", "test")


def _from_cwd(path: str) -> str:
    """An absolute ``path`` as a path from the current directory (what messages show)."""
    try:
        return os.path.relpath(path)
    except (ValueError, OSError):  # another drive, or a current directory that is gone
        return path


def corpora_root(configured: str | os.PathLike | None = None) -> Path:
    """The folder of the public corpora: ``configured`` (``classify.corpora_root``), else
    ``$CNER_CORPORA``, else ``shared/corpora`` beside the project checkout (``../shared/corpora``
    from its root), else, outside a checkout, ``../shared/corpora`` from the current directory."""
    if configured:
        return Path(configured)
    env = os.environ.get(CORPORA_ENV, "").strip()
    if env:
        return Path(os.path.expanduser(env))
    if (SOURCE_ROOT / "pyproject.toml").is_file():
        return Path(_from_cwd(str(SOURCE_ROOT.parent / "shared" / "corpora")))
    return Path("../shared/corpora")


def _expand_corpora(value: str) -> str:
    match = _CORPORA_VAR.match(value)
    if not match:
        return value
    rest = value[match.end():].lstrip("/\\")
    return str(corpora_root() / rest) if rest else str(corpora_root())


def expand_corpora_paths(cfg: Config) -> None:
    """Replace a leading ``$CNER_CORPORA`` in the path keys of ``cfg`` by `corpora_root`."""
    for key in PATH_KEYS:
        section, name = key.split(".")
        node = getattr(cfg, section)
        value = getattr(node, name)
        if isinstance(value, str):
            setattr(node, name, _expand_corpora(value))


def _relative_to(value: Any, base: Path) -> Any:
    """A relative path string from a config file, made relative to the file's folder."""
    if not isinstance(value, str) or not value or _CORPORA_VAR.match(value):
        return value
    value = os.path.expanduser(value)
    if os.path.isabs(value):
        return value
    return _from_cwd(os.path.normpath(base / value))


def resolve_file_paths(values: dict[str, Any], base: Path) -> None:
    """Rewrite the relative paths of a config file's ``values`` against its folder ``base``."""
    for key in PATH_KEYS:
        section, name = key.split(".")
        node = values.get(section)
        if isinstance(node, dict) and name in node:
            node[name] = _relative_to(node[name], base)
    model = values.get("model")
    if isinstance(model, dict) and isinstance(model.get("encoder"), str):
        encoder = model["encoder"]
        if encoder not in LOCAL_ENCODERS and (base / os.path.expanduser(encoder)).is_dir():
            model["encoder"] = _relative_to(encoder, base)


def _default_paths() -> dict[str, str]:
    """The built-in data paths (the sample corpus), from the source checkout's root."""
    defaults = DataConfig()
    return {name: _from_cwd(os.path.normpath(SOURCE_ROOT / getattr(defaults, name)))
            for name in _DATA_PATHS}


def fill_default_paths(values: dict[str, Any]) -> set[str]:
    """Give ``values`` the built-in data paths (the checkout's sample) it does not name;
    returns the keys so filled (``data.train``, ...)."""
    if values.get("data") is None:
        values["data"] = {}
    defaulted = set()
    if isinstance(values["data"], dict):
        for name, default in _default_paths().items():
            if name not in values["data"]:
                values["data"][name] = default
                defaulted.add(f"data.{name}")
    return defaulted


def check_default_sample(cfg: Config, defaulted: set[str]) -> None:
    """Built-in data paths name the sample corpus of a source checkout, which an installed
    wheel does not have: say so, and how to name other files, instead of "file not found"."""
    for name in _DATA_PATHS:
        value = getattr(cfg.data, name)
        if f"data.{name}" not in defaulted or value is None or os.path.isfile(value):
            continue
        option = f"--{name} FILE"
        instead = option if name == "train" else f"{option} or --set data.{name}=null"
        raise ConfigError(f"config key 'data.{name}' defaults to the sample corpus of a cner "
                          f"source checkout, and {os.path.abspath(value)} is not there; pass "
                          f"{instead} (or set data.{name} in a --config file)")
