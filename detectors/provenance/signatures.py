"""Generator signatures: fixed strings that AI image tools write into EXIF, PNG text and XMP.

The rules are data, in the versioned table ``generator_signatures.json``
beside this module: each names the fields it applies to, a case-insensitive
regular expression, a strength and examples that must (and must not) match.
Name fields (``Make``, ``Model``, ``Software``, ``CreatorTool``) are matched
from their start; free-text fields (``ImageDescription``, ``UserComment``,
PNG ``Description``) only on a tool's own fixed output, never on a mere
mention of a tool in a caption. ``generator_metadata`` reports matches as a
generator claim, and ``exif`` refuses to call such a file a camera.

References:
    CIPA DC-008-2023 (Exif 3.0) tags Make, Model, Software, ImageDescription,
    UserComment; Adobe XMP Specification Part 2 (``xmp:CreatorTool``);
    black-forest-labs/flux ``src/flux/cli.py`` (the EXIF it writes).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

__all__ = ["SignatureMatch", "SignatureRule", "SignatureTable", "load_signature_table", "match_signatures"]

#: Longest field text a pattern is run on.
MAX_MATCH_CHARS = 4096


@dataclass(frozen=True)
class SignatureRule:
    """One row of the table.

    Attributes:
        id: Stable identifier, e.g. ``"bfl-flux-make"``.
        tool: Human name of the tool.
        fields: Field names the rule applies to (EXIF tag names, PNG text keys, ``CreatorTool``).
        pattern: Compiled case-insensitive regular expression.
        strength: ``proof`` or ``strong``.
        examples: Values that must match.
        counter_examples: Values that must not match.
        prompt_field: Field that holds the prompt in this tool's output, if any.
        model_field: Field that holds the model name, if any.
    """

    id: str
    tool: str
    fields: tuple[str, ...]
    pattern: re.Pattern[str]
    strength: str
    examples: tuple[str, ...]
    counter_examples: tuple[str, ...]
    prompt_field: str | None = None
    model_field: str | None = None


@dataclass(frozen=True)
class SignatureTable:
    """The versioned table: ``version`` is named in evidence."""

    version: str
    rules: tuple[SignatureRule, ...]


@dataclass(frozen=True)
class SignatureMatch:
    """A rule that matched one field.

    Attributes:
        rule: The rule's ``id``.
        tool: The tool it names.
        strength: ``proof`` or ``strong``.
        where: Where the field was read, e.g. ``"EXIF Make"``.
        field: The field name.
        value: The field's text, cut to 256 characters.
    """

    rule: str
    tool: str
    strength: str
    where: str
    field: str
    value: str


@functools.lru_cache(maxsize=1)
def load_signature_table() -> SignatureTable:
    """Load and compile ``generator_signatures.json`` (once per process).

    Raises:
        ValueError: If a rule lacks a field, has an unknown strength or a bad pattern.
    """
    text = resources.files("detectors.provenance").joinpath("generator_signatures.json").read_text(encoding="utf-8")
    d = json.loads(text)
    rules = []
    for i, r in enumerate(d["rules"]):
        try:
            if r["strength"] not in ("proof", "strong"):
                raise ValueError(f"strength must be proof or strong, got {r['strength']!r}")
            rules.append(SignatureRule(
                id=str(r["id"]), tool=str(r["tool"]), fields=tuple(r["fields"]),
                pattern=re.compile(r["pattern"], re.IGNORECASE), strength=r["strength"],
                examples=tuple(r.get("examples", ())), counter_examples=tuple(r.get("counter_examples", ())),
                prompt_field=r.get("prompt_field"), model_field=r.get("model_field"),
            ))
        except (KeyError, re.error, ValueError) as exc:
            raise ValueError(f"generator_signatures.json: rule {i}: {exc}") from None
    return SignatureTable(str(d["version"]), tuple(rules))


def match_signatures(fields: Iterable[tuple[str, str, str]]) -> list[SignatureMatch]:
    """Apply every rule to ``(where, field, text)`` triples.

    Returns:
        Matches in field order, ``proof`` rules of a field before ``strong`` ones.
    """
    table = load_signature_table()
    out: list[SignatureMatch] = []
    for where, key, text in fields:
        if not isinstance(text, str):
            continue
        value = text[:MAX_MATCH_CHARS].replace("\x00", "")
        for rule in table.rules:
            if key in rule.fields and rule.pattern.search(value):
                out.append(SignatureMatch(rule.id, rule.tool, rule.strength, where, key, value[:256].strip()))
    out.sort(key=lambda m: m.strength != "proof")
    return out
