"""Configuration problems: where they are (``file:line path``) and what they say.

pydantic's errors are translated here: a union's alternatives are reduced to the one the
input was meant as, and an unknown name gets a "did you mean" from the names that exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from erpbridge.errors import ConfigProblem
from erpbridge.suggest import did_you_mean
from erpbridge.yamlfile import Loc, format_loc

__all__ = [
    "Loc",
    "Problems",
    "did_you_mean",
    "format_loc",
    "hint_of",
    "message_of",
    "settings_of",
]


@dataclass
class Problems:
    """The problems and warnings found in one file, each placed by its path's line."""

    file: str
    lines: dict[Loc, int]
    found: list[ConfigProblem] = field(default_factory=list)
    #: Not errors: the configuration works, but probably not as its author wants.
    warnings: list[ConfigProblem] = field(default_factory=list)

    def add(self, loc: Loc, message: str, hint: str = "") -> None:
        self.found.append(self._at(loc, message, hint))

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(self._at(loc, message))

    def _at(self, loc: Loc, message: str, hint: str = "") -> ConfigProblem:
        line = None
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                line = self.lines[loc[:end]]
                break
        return ConfigProblem(self.file, line, format_loc(loc), message, hint)

    def add_validation(
        self, prefix: Loc, exc: ValidationError, model: type[BaseModel] | None = None
    ) -> None:
        """Add ``exc``'s errors under ``prefix``; ``model`` (what was validated) lets an
        unknown setting get a "did you mean"."""
        errors = []
        for order, err in enumerate(exc.errors()):
            raw: Loc = tuple(err["loc"])
            tags, clean = set(), list(prefix)
            for i, part in enumerate(raw):
                # A key written in the file is never a tag, even one named like a class ("MDS").
                if isinstance(part, str) and (*clean, part) not in self.lines and _TAG.match(part):
                    tags.add(i)
                else:
                    clean.append(part)
            errors.append(_Error(order, raw, frozenset(tags), tuple(clean), err))
        seen: set[tuple[Loc, str]] = set()
        for error in sorted(_union_choices(errors, 0), key=lambda e: e.order):
            message = message_of(error.err)
            if (error.loc, message) not in seen:
                seen.add((error.loc, message))
                self.add(error.loc, message, hint_of(error.err, model, error.raw))

    def mapping_loc(self, at: Loc, path: str) -> Loc:
        """A mapping compile problem's path (``lines.sku.transforms[1]``) as a file location."""
        loc = at
        for part in path.split("."):
            name, _, index = part.partition("[")
            index = index.removesuffix("]")
            if (*loc, name) not in self.lines and (*loc, "fields", name) in self.lines:
                loc = (*loc, "fields")  # a nested field sits under its parent's 'fields:'
            loc = (*loc, name, int(index)) if index.isdigit() else (*loc, part)
        return loc


# pydantic names each alternative of a union in the error location: a class name, 'str',
# 'function-after[…]', 'literal[…]', 'list[…]', 'dict[…]'.
_TAG = re.compile(
    r"^(?:[A-Z]\w*|str|int|float|bool|function-.*|literal\[.*\]|list\[.*\]|dict\[.*\])$"
)
# Error types saying "the input is not of this alternative's type at all".
_MISMATCH = frozenset(
    {
        "string_type",
        "literal_error",
        "model_type",
        "model_attributes_type",
        "list_type",
        "dict_type",
        "int_type",
        "float_type",
        "bool_type",
        "decimal_type",
        "is_instance_of",
    }
)


@dataclass(frozen=True)
class _Error:
    order: int
    raw: Loc
    tags: frozenset[int]
    loc: Loc
    err: Any


def _union_choices(errors: list[_Error], start: int) -> list[_Error]:
    """Keep, for every union, only the errors of the alternative the input was meant as.

    That is the alternative with the fewest errors among those the input had the right shape
    for; when it fits none, one error at the union's place says what was expected.
    """
    kept: list[_Error] = []
    unions: dict[Loc, dict[str | int, list[_Error]]] = {}
    for error in errors:
        tag = min((t for t in error.tags if t >= start), default=None)
        if tag is None:
            kept.append(error)
        else:
            unions.setdefault(error.raw[:tag], {}).setdefault(error.raw[tag], []).append(error)
    for at, members in unions.items():
        meant = {
            member: [e for e in errs if len(e.raw) > len(at) + 1 or e.err["type"] not in _MISMATCH]
            for member, errs in members.items()
        }
        candidates = [member for member in members if meant[member]]
        if candidates:
            best = min(candidates, key=lambda member: len(meant[member]))
            kept.extend(_union_choices(members[best], len(at) + 1))
        else:
            kept.append(min((e for errs in members.values() for e in errs), key=lambda e: e.order))
    return kept


def message_of(err: Any) -> str:
    """A pydantic error's message in the configuration's words."""
    if err["type"] == "extra_forbidden":
        return "unknown setting"
    if err["type"] == "missing":
        return "required setting is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def hint_of(err: Any, model: Any, raw: Loc) -> str:
    """For an unknown setting of ``model`` (at pydantic's ``raw`` location, union tags
    included): the known setting it is close to, and the list of known settings."""
    if err["type"] != "extra_forbidden" or model is None or not raw:
        return ""
    owner = _model_at(model, raw[:-1])
    if owner is None:
        return ""
    known = settings_of(owner)
    close = did_you_mean(raw[-1], known).removeprefix("; ")
    return f"{close} settings: {', '.join(known)}" if close else f"settings: {', '.join(known)}"


def settings_of(model: type[BaseModel]) -> list[str]:
    """The setting names ``model`` accepts (its aliases where it has them)."""
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _model_at(annotation: Any, raw: Loc) -> type[BaseModel] | None:
    """The model whose input sits at ``raw`` (a pydantic error location) inside ``annotation``."""
    for part in raw:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {f.alias or n: f for n, f in annotation.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[part].annotation
            continue
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (dict, Mapping) and len(args) == 2:
            annotation = args[1]
        elif origin in (list, tuple) and args:
            annotation = args[0]
        elif origin in (Union, UnionType):
            # pydantic's tag is the class name, or wraps it: 'function-after[…, FieldMapping]'.
            named = [a for a in args if _tagged(getattr(_unwrap(a), "__name__", None), part)]
            if not named:
                return None
            annotation = named[0]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _tagged(name: str | None, tag: object) -> bool:
    return name is not None and (
        name == tag or re.search(rf"\b{re.escape(name)}\]", str(tag)) is not None
    )


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = get_args(annotation)
    if get_origin(annotation) in (Union, UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _unwrap(rest[0])
    return annotation
