"""Tag schemes and the conversion between per-character tags and entity spans.

Supported schemes (``name``: prefixes):

* ``bio`` (IOB2): ``B`` begins a chunk, ``I`` continues it.
* ``iob1``: ``I`` begins or continues; ``B`` only begins a chunk that directly follows a
  chunk of the same type.
* ``bioes`` (IOBES): ``B``egin, ``I``nside, ``E``nd, ``S``ingle.
* ``bmes``: as ``bioes`` with ``M`` for the middle.
* ``bilou``: as ``bioes`` with ``L``ast and ``U``nit.

A tag is ``O`` or ``PREFIX-LABEL``; the label may carry dotted suffixes (``B-PER.NAM``) and
is kept whole. Offsets are end-exclusive.

Repair policy for invalid sequences: ``mode="strict"`` raises `SchemeError` listing every
invalid transition; ``mode="lenient"`` decodes as conlleval does: a continuation tag (``I``,
``M``, ``E``, ``L``) that cannot continue the current chunk starts a new one, and a chunk
ends where the next tag cannot continue it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cner.errors import SchemeError

SCHEMES = ("bio", "iob1", "bioes", "bmes", "bilou")

# Each scheme's prefixes mapped onto the BIOES roles: B(egin) I(nside) E(nd) S(ingle).
_ROLES = {
    "bio": {"B": "B", "I": "I"},
    "iob1": {"B": "B", "I": "I"},
    "bioes": {"B": "B", "I": "I", "E": "E", "S": "S"},
    "bmes": {"B": "B", "M": "I", "E": "E", "S": "S"},
    "bilou": {"B": "B", "I": "I", "L": "E", "U": "S"},
}
# The inverse, for writing tags.
_PREFIX = {scheme: {role: prefix for prefix, role in roles.items()} for scheme, roles in _ROLES.items()}


@dataclass(frozen=True, order=True)
class Span:
    """An entity: ``text[start:end]`` labelled ``label`` (end exclusive)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Violation:
    """An invalid transition: ``previous`` -> ``tag`` at ``position`` (``None`` = sentence edge)."""

    position: int
    previous: str | None
    tag: str | None
    reason: str

    def __str__(self) -> str:
        prev = self.previous if self.previous is not None else "<start>"
        cur = self.tag if self.tag is not None else "<end>"
        return f"position {self.position}: {prev} -> {cur} ({self.reason})"


def check_scheme(scheme: str) -> str:
    scheme = scheme.lower()
    aliases = {"iob2": "bio", "iobes": "bioes", "bieso": "bioes", "bmeso": "bmes"}
    scheme = aliases.get(scheme, scheme)
    if scheme not in SCHEMES:
        raise SchemeError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return scheme


def split_tag(tag: str, scheme: str) -> tuple[str, str | None]:
    """Return ``(role, label)``: role is ``O`` or one of ``B I E S``; label is ``None`` for O.

    Raises `SchemeError` for a tag that is not ``O`` and has no valid prefix for ``scheme``.
    """
    if tag == "O":
        return "O", None
    prefix, sep, label = tag.partition("-")
    role = _ROLES[scheme].get(prefix)
    if not sep or not label or role is None:
        valid = "/".join(_ROLES[scheme])
        raise SchemeError(f"unknown tag {tag!r} for scheme {scheme}: expected O or {valid}-LABEL")
    return role, label


def transition_allowed(scheme: str, prev: tuple[str, str | None] | None,
                       cur: tuple[str, str | None] | None) -> bool:
    """Whether ``prev -> cur`` is valid; each is ``(role, label)`` or ``None`` for a sentence edge.

    This one table drives validation and the CRF's decoding constraints.
    """
    prev_role, prev_label = prev if prev is not None else ("O", None)
    cur_role, cur_label = cur if cur is not None else ("O", None)
    if scheme in ("bio", "iob1"):
        if cur is None or cur_role == "O":
            return True
        if scheme == "bio":
            if cur_role == "B":
                return True
            return prev_role != "O" and prev_label == cur_label  # I continues a same-type chunk
        # iob1: I may start a chunk anywhere; B only right after a chunk of the same type.
        if cur_role == "I":
            return True
        return prev_role != "O" and prev_label == cur_label
    # bioes / bmes / bilou
    prev_open = prev_role in ("B", "I")
    if prev_open:
        return cur_role in ("I", "E") and cur_label == prev_label
    if cur is None:
        return True
    return cur_role in ("O", "B", "S")


def find_invalid(tags: Sequence[str], scheme: str) -> list[Violation]:
    """Every invalid transition in ``tags`` under ``scheme``, including unknown tags."""
    scheme = check_scheme(scheme)
    found: list[Violation] = []
    parsed: list[tuple[str, str | None] | None] = []
    for i, tag in enumerate(tags):
        try:
            parsed.append(split_tag(tag, scheme))
        except SchemeError as exc:
            found.append(Violation(i, tags[i - 1] if i else None, tag, str(exc)))
            parsed.append(("O", None))
    for i in range(len(tags) + 1):
        prev = parsed[i - 1] if i > 0 else None
        cur = parsed[i] if i < len(tags) else None
        if not transition_allowed(scheme, prev, cur):
            found.append(Violation(i, tags[i - 1] if i > 0 else None,
                                   tags[i] if i < len(tags) else None, "invalid transition"))
    return sorted(found, key=lambda v: v.position)


def tags_to_spans(tags: Sequence[str], *, scheme: str = "bio", mode: str = "strict") -> list[Span]:
    """Decode per-character ``tags`` into spans (sorted by start).

    ``mode="strict"`` raises `SchemeError` on any invalid tag or transition; ``"lenient"``
    repairs as described in the module docstring (unknown tags still raise).
    """
    scheme = check_scheme(scheme)
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
    if mode == "strict":
        bad = find_invalid(tags, scheme)
        if bad:
            listed = "; ".join(str(v) for v in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise SchemeError(f"{len(bad)} invalid tag transition(s) under {scheme}: {listed}{more}")
    spans: list[Span] = []
    start: int | None = None
    label: str | None = None
    prev_role = "O"
    parsed = {tag: split_tag(tag, scheme) for tag in set(tags)}  # a few distinct tags
    for i, tag in enumerate(tags):
        role, cur_label = parsed[tag]
        # Does the open chunk continue into this tag?
        continues = (start is not None and role in ("I", "E") and cur_label == label
                     and prev_role in ("B", "I"))
        if scheme == "iob1" and role == "B":
            continues = False
        if start is not None and not continues:
            spans.append(Span(start, i, label))  # type: ignore[arg-type]
            start = None
        if role != "O" and start is None:
            start, label = i, cur_label
        if role in ("E", "S") and start is not None:
            spans.append(Span(start, i + 1, label))  # type: ignore[arg-type]
            start = None
        prev_role = role if role not in ("E", "S") else "O"
    if start is not None:
        spans.append(Span(start, len(tags), label))  # type: ignore[arg-type]
    return spans


def spans_to_tags(spans: Sequence[Span], length: int, *, scheme: str = "bio") -> list[str]:
    """Encode non-overlapping ``spans`` over ``length`` characters as tags of ``scheme``.

    Raises `SchemeError` for a span outside ``[0, length)``, an empty span, or overlapping
    spans (use `flatten_spans` first for nested corpora).
    """
    scheme = check_scheme(scheme)
    tags = ["O"] * length
    prefix = _PREFIX[scheme]
    last_end, last_label = -1, None
    for span in sorted(spans):
        if not 0 <= span.start < span.end <= length:
            raise SchemeError(f"span {span.start}:{span.end} ({span.label}) is outside a text of "
                              f"{length} characters or empty")
        if span.start < last_end:
            raise SchemeError(f"span {span.start}:{span.end} ({span.label}) overlaps the previous "
                              "span; character tags cannot express nested entities")
        n = span.end - span.start
        if scheme == "iob1":
            first = "B" if (span.start == last_end and span.label == last_label) else "I"
            roles = [first] + ["I"] * (n - 1)
        elif scheme == "bio":
            roles = ["B"] + ["I"] * (n - 1)
        else:
            roles = ["S"] if n == 1 else ["B"] + ["I"] * (n - 2) + ["E"]
        for k, role in enumerate(roles):
            tags[span.start + k] = f"{prefix[role]}-{span.label}"
        last_end, last_label = span.end, span.label
    return tags


def flatten_spans(spans: Sequence[Span]) -> tuple[list[Span], list[Span]]:
    """Split spans into a non-overlapping set and the dropped rest.

    Longer spans win (then earlier ones), so an outer entity is kept and the entities nested
    inside it are dropped: the usual choice for flat character tagging.
    """
    kept: list[Span] = []
    dropped: list[Span] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start, s.label)):
        if any(span.start < k.end and k.start < span.end for k in kept):
            dropped.append(span)
        else:
            kept.append(span)
    return sorted(kept), sorted(dropped)


def convert_tags(tags: Sequence[str], *, source: str, target: str, mode: str = "strict") -> list[str]:
    """Re-tag a sequence from scheme ``source`` to scheme ``target``."""
    return spans_to_tags(tags_to_spans(tags, scheme=source, mode=mode), len(tags), scheme=target)


def detect_scheme(tag_sequences: Sequence[Sequence[str]]) -> str:
    """Guess the scheme from the prefixes used; IOB1 is chosen when BIO is invalid but IOB1 is not."""
    prefixes = {t.partition("-")[0] for seq in tag_sequences for t in seq if t != "O"}
    if "M" in prefixes:
        return "bmes"
    if prefixes & {"L", "U"}:
        return "bilou"
    if prefixes & {"E", "S"}:
        return "bioes"
    bio_bad = any(find_invalid(seq, "bio") for seq in tag_sequences)
    if bio_bad and not any(find_invalid(seq, "iob1") for seq in tag_sequences):
        return "iob1"
    return "bio"


def label_set(labels: Sequence[str], scheme: str) -> list[str]:
    """All tags of ``scheme`` for the entity ``labels``: ``O`` first, then per label in prefix order."""
    scheme = check_scheme(scheme)
    tags = ["O"]
    for label in sorted(set(labels)):
        tags.extend(f"{prefix}-{label}" for prefix in _ROLES[scheme])
    return tags
