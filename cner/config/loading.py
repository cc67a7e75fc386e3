"""Reading a config: the YAML file, ``--set key.path=value`` overrides, typed building.

`load_config` reads the file (UTF-8, a mapping of sections; each failure names the file and
line), resolves its paths (`cner.config.paths`), applies the overrides, builds the typed
sections (`cner.config.schema`), checking every key and value type, and checks the values
(`cner.config.checks`). An unknown key is an error that names the nearest valid one.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from cner.config.checks import check_values
from cner.config.paths import (SAVED_CONFIG, check_default_sample, expand_corpora_paths,
                               fill_default_paths, resolve_file_paths)
from cner.config.schema import Config
from cner.errors import ConfigError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    options = typing.get_args(tp)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is type(None):
            continue
        try:
            return _coerce(value, option, key)
        except ConfigError:
            pass
    names = " or ".join(_type_name(o) for o in options)
    raise ConfigError(f"config key {key!r} expects {names}, found {value!r}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted for floats)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads "3e-3" (no dot) as a string; users mean the number.
        try:
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool) or tp is not bool and isinstance(value, bool):
        raise ConfigError(f"config key {key!r} expects {_type_name(tp)}, found {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"config key {key!r} expects {_type_name(tp)}, found {value!r} "
                          f"({type(value).__name__})")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if values is None and prefix:  # "data:" with every key commented out
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'!r} must be a mapping, "
                          f"found {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise unknown_key(prefix + key, [prefix + name for name in fields])
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


def unknown_key(key: str, valid: list[str]) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key {key!r}{hint}")


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += all_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.path=value`` strings (values parsed as YAML scalars) to a nested dict."""
    valid = all_keys()
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set expects key.path=value, found {item!r}")
        if key not in valid:
            raise unknown_key(key, valid)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return values


def config_from_dict(values: dict[str, Any]) -> Config:
    cfg = _build(Config, values, "")
    data_given = values.get("data") or {}
    if "overlap" not in data_given:  # the default shrinks with a short window: 32 at 128
        cfg.data.overlap = max(0, min(cfg.data.overlap, cfg.data.max_length // 4))
    return check_values(cfg)


def _read_text(path: Path) -> str:
    """The config file's text (UTF-8, a BOM allowed); a `ConfigError` saying why not."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save "
                          "the config as UTF-8") from None


def _read_config_file(path: Path) -> dict[str, Any]:
    text = _read_text(path)
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).replace("\n", " ")
        raise ConfigError(f"{path}{where}: invalid YAML ({problem})") from None
    if values is None:  # an empty file: the defaults
        return {}
    if not isinstance(values, dict):
        found = "a list" if isinstance(values, list) else f"the scalar {values!r}"
        raise ConfigError(f"{path}: the top level must be a mapping of sections (name:, data:, "
                          f"model:, training:, classify:), found {found}")
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
                ) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides.

    Relative paths in the file are taken from the file's folder, those in ``overrides`` from
    the current directory (`cner.config.paths`); the config holds them as paths from the
    current directory.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        values = _read_config_file(path)
        values.setdefault("name", path.stem)
        if path.name != SAVED_CONFIG:
            resolve_file_paths(values, path.absolute().parent.resolve())
    # data paths the file does not give are the built-in defaults, the checkout's sample
    from_defaults = fill_default_paths(values)
    cfg = config_from_dict(apply_overrides(values, overrides))
    expand_corpora_paths(cfg)
    if cfg.classify.task is None:
        check_default_sample(cfg, from_defaults - {item.partition("=")[0].strip()
                                                   for item in overrides})
    return cfg
