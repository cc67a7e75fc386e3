"""A student's starting weights taken from its teacher (``distill.init_from_teacher``).

A student of the teacher's shape that drops a costly input feature (jieba's segmentation:
~3 µs a character at inference) starts from every teacher weight it shares, instead of
from random ones; distillation then only has to make up for the dropped input. Features are
added to the character embedding (`cner.models.tagger.TokenTagger.emissions`), so dropping
one leaves every other tensor's shape unchanged.

Tensors are matched by name. The two lookup tables are matched by key instead of by row,
because the student builds its own vocabulary and bigram list from the texts it trains on:
a character (bigram) row is copied from the teacher's row for the same character (bigram);
a row the teacher has no key for gets the teacher's unknown-key row, which is what the
teacher itself reads for that character (bigram), so the untrained student computes what the
teacher computes without the dropped feature. Any other tensor both have must
have the same shape (a `ConfigError` names the first that does not); tensors only one side
has (the dropped feature's table) are reported, not copied.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cner.encoding.features import BIGRAM_SPECIALS
from cner.errors import ConfigError


@dataclass
class Transplant:
    """What `transplant` copied: whole tensors, and table rows found in the teacher."""

    tensors: list[str] = field(default_factory=list)  # copied whole
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (found, rows)
    teacher_only: list[str] = field(default_factory=list)  # not in the student: left out
    student_only: list[str] = field(default_factory=list)  # not in the teacher: initialised

    def summary(self) -> str:
        tables = ", ".join(f"{name} {found:,} of {rows:,} rows"
                           for name, (found, rows) in self.rows.items())
        parts = [f"{len(self.tensors)} tensors", tables]
        if self.teacher_only:
            parts.append(f"left out the teacher's {', '.join(self.teacher_only)}")
        if self.student_only:
            parts.append(f"new: {', '.join(self.student_only)}")
        return "; ".join(p for p in parts if p)


def _param_name(model: nn.Module, param: nn.Parameter | None) -> str | None:
    if param is None:
        return None
    return next((name for name, p in model.named_parameters() if p is param), None)


def _tables(model: nn.Module, featurizer) -> dict[str, tuple[Sequence[str], int]]:
    """Parameter name -> (the key of each row, the unknown key's row), for the character and
    bigram tables."""
    tables = {}
    chars = _param_name(model, model.encoder.get_input_embeddings().weight)
    if chars is not None:
        tables[chars] = (featurizer.vocab.tokens, featurizer.vocab.unk_id)
    bigrams = getattr(model, "bigram_embeddings", None)
    if bigrams is not None and featurizer.bigrams:
        tables[_param_name(model, bigrams.weight)] = (featurizer.bigrams,
                                                      BIGRAM_SPECIALS.index("<unk>"))
    return tables


@torch.no_grad()
def copy_rows(target: torch.Tensor, target_keys: Sequence[str], source: torch.Tensor,
              source_keys: Sequence[str], unknown: int) -> int:
    """Copy ``source``'s row of each key into ``target``'s row of the same key, and row
    ``unknown`` of ``source`` into the rows of keys it lacks; returns how many keys were
    found. ``target`` float ``(R, E)``, ``source`` float ``(R', E)``."""
    index = {key: i for i, key in enumerate(source_keys[:source.shape[0]])}
    found = [index.get(key, -1) for key in target_keys[:target.shape[0]]]
    rows = torch.tensor(found, dtype=torch.long)  # shape: (R,); -1 where the teacher lacks it
    target[:len(found)] = source[rows.masked_fill(rows < 0, unknown)].to(target.dtype)
    return int((rows >= 0).sum())


@torch.no_grad()
def transplant(student: nn.Module, student_featurizer, teacher: nn.Module,
               teacher_featurizer) -> Transplant:
    """Fill ``student`` with ``teacher``'s weights where they match (module docstring)."""
    report = Transplant()
    own = dict(student.named_parameters())
    theirs = dict(teacher.named_parameters())
    own_tables = _tables(student, student_featurizer)
    their_tables = _tables(teacher, teacher_featurizer)
    for name, param in own.items():
        source = theirs.get(name)
        table = name in own_tables and name in their_tables  # rows matched by key
        compared = 1 if table else 0  # a table's row count may differ, not its width
        if source is None:
            report.student_only.append(name)
        elif param.shape[compared:] != source.shape[compared:]:
            raise ConfigError(f"distill.init_from_teacher: the student's {name} is "
                              f"{tuple(param.shape)}, the teacher's {tuple(source.shape)}; "
                              "give the student the teacher's model.embedding_size, "
                              "hidden_size and num_layers")
        elif table:
            found = copy_rows(param, own_tables[name][0], source, *their_tables[name])
            report.rows[name] = (found, param.shape[0])
        else:
            param.copy_(source.to(param.dtype))
            report.tensors.append(name)
    report.teacher_only = [name for name in theirs if name not in own]
    return report
