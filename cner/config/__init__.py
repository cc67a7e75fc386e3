"""Typed run configuration: YAML files, ``--set key.path=value`` overrides, strict validation.

A config is nested dataclasses. Loading checks every key and value type, and every value
against what training can use (counts >= 1, rates finite, names from their choices); an
unknown key or choice is an error that names the nearest valid one. Paths in a config file
are relative to the file's folder, those on the command line to the current directory.

The package, by responsibility:

* `cner.config.schema`: the typed sections, their defaults, `Config.save`, `PATH_KEYS`.
* `cner.config.loading`: reading the YAML file, applying overrides, building the sections
  (`load_config`, `config_from_dict`, `apply_overrides`).
* `cner.config.checks`: the value checks (`check_values`, `CHOICES`, the ranges).
* `cner.config.paths`: path resolution (the config file's folder, ``$CNER_CORPORA`` and
  `corpora_root`, the sample corpus defaults). Tests that move the source checkout patch
  ``cner.config.paths.SOURCE_ROOT``, the name its functions read.

Everything public is importable from here.
"""
from __future__ import annotations

from cner.config.checks import (AT_LEAST_ONE, CHOICES, DEVICE, FLOAT_RANGES, MIN_LENGTH,
                                MIN_PAIR_LENGTH, PRECISIONS, SCHEME_NAMES, SEED_LIMIT,
                                check_values)
from cner.config.loading import (all_keys, apply_overrides, config_from_dict, load_config,
                                 unknown_key)
from cner.config.paths import CORPORA_ENV, SAVED_CONFIG, SOURCE_ROOT, corpora_root
from cner.config.schema import (LOCAL_ENCODERS, PATH_KEYS, ClassifyConfig, Config, DataConfig,
                                DistillConfig, ModelConfig, PretrainConfig, TrainingConfig)

__all__ = [
    "AT_LEAST_ONE", "CHOICES", "CORPORA_ENV", "DEVICE", "FLOAT_RANGES", "LOCAL_ENCODERS",
    "MIN_LENGTH", "MIN_PAIR_LENGTH", "PATH_KEYS", "PRECISIONS", "SAVED_CONFIG", "SCHEME_NAMES",
    "SEED_LIMIT", "SOURCE_ROOT", "ClassifyConfig", "Config", "DataConfig", "DistillConfig",
    "ModelConfig", "PretrainConfig", "TrainingConfig", "all_keys", "apply_overrides",
    "check_values", "config_from_dict", "corpora_root", "load_config", "unknown_key",
]
