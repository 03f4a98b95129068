"""Read a YAML 1.2 file into plain data plus the line of every path, refusing its traps.

YAML 1.2 (ruamel.yaml): ``yes``, ``no``, ``on``, ``off`` are strings, not booleans; ``010`` is ten.
A key written twice is an error naming both lines (PyYAML kept the last one silently). Nesting
deeper than :data:`MAX_DEPTH` and aliases expanding to more than :data:`MAX_VALUES` values (the
"billion laughs") are refused with one ``file:line: message`` before anything is built, so a
hostile file costs milliseconds, not a MemoryError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import ConstructorError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scanner import Scanner

from erpbridge.errors import ConfigError, ConfigProblem

__all__ = ["MAX_DEPTH", "MAX_VALUES", "Loc", "YamlDocument", "format_loc", "read_yaml"]

#: A path into a document: ``("flows", 3, "mapping", "price")``.
Loc = tuple[str | int, ...]

#: Deepest nesting of mappings and lists accepted; a real configuration needs about 10.
MAX_DEPTH = 100
#: Most values the document may hold once every alias is expanded.
MAX_VALUES = 100_000

_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALARS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)


def format_loc(loc: Loc) -> str:
    """``('flows', 3, 'mapping', 'price')`` → ``flows[3].mapping.price``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Refused(Exception):
    """The document is refused as a whole (too deep, alias bomb): one problem, no data."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _BoundedScanner(Scanner):
    """ruamel's scanner, refusing deep ``[[[…`` early (its simple-key bookkeeping grows with
    the flow level, so 5 000 levels would take seconds) and any ``%YAML`` other than 1.2."""

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: Any) -> None:
        if len(self.flow_context) >= MAX_DEPTH:
            line = self.reader.get_mark().line + 1
            raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels")
        super().fetch_flow_collection_start(TokenClass, to_push)

    def scan_directive(self) -> Any:
        token = super().scan_directive()
        if token.name == "YAML" and tuple(token.value or ()) != (1, 2):
            version = ".".join(str(v) for v in token.value or ())
            raise _Refused(
                token.start_mark.line + 1,
                f"%YAML {version}: erpbridge reads YAML 1.2 only; remove the directive",
            )
        return token


class _BoundedComposer(Composer):
    """ruamel's composer, refusing deep nesting and noting where each alias is used."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                _aliases(self).append((event.start_mark.line + 1, event.anchor, node))
        elif self.depth >= MAX_DEPTH:
            raise _Refused(event.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
        return super().compose_node(parent, index)


def _aliases(composer: Any) -> list[tuple[int, str, Node]]:
    found: list[tuple[int, str, Node]] | None = getattr(composer, "_erpbridge_aliases", None)
    if found is None:
        found = []
        composer._erpbridge_aliases = found
    return found


@dataclass
class YamlDocument:
    """A YAML document as plain data, the line of each path, and what it got wrong."""

    data: Any
    #: path → 1-based line: a mapping entry's key line, a list item's own line.
    lines: dict[Loc, int] = field(default_factory=dict)
    #: Duplicate keys and unsupported tags: reported with the rest, the data still usable.
    problems: list[ConfigProblem] = field(default_factory=list)


def read_yaml(text: str, file: str) -> YamlDocument:
    """Parse ``text`` (the content of ``file``) as one YAML 1.2 document.

    Raise :class:`ConfigError` when it is not YAML, too deep or an alias bomb.
    """
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    yaml.Scanner = _BoundedScanner
    yaml.Composer = _BoundedComposer
    try:
        root = yaml.compose(text)
        if root is not None:
            _check_expansion(root, _aliases(yaml.composer))
    except _Refused as exc:
        raise ConfigError([ConfigProblem(file, exc.line, "", exc.message)]) from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) if isinstance(exc, MarkedYAMLError) else None
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, line, "", f"malformed YAML: {reason}")]) from None
    document = YamlDocument(None)
    if root is not None:
        document.data = _Builder(yaml, file, document).build(root, ())
    return document


def _check_expansion(root: Node, aliases: list[tuple[int, str, Node]]) -> None:
    """Refuse a document whose aliases expand too far or refer to themselves.

    Sizes and depths are counted over the node graph (each shared node once), without
    expanding anything, so a billion laughs is answered in milliseconds.
    """
    if not aliases:
        return  # without aliases the composer's depth bound is the whole story
    size: dict[int, tuple[int, int]] = {}  # id(node) → (values once expanded, depth)
    for line, anchor, node in aliases:
        try:
            values, depth = _measure(node, size)
        except RecursionError:
            raise _Refused(line, f"alias *{anchor} refers to a node that contains it") from None
        if depth > MAX_DEPTH:
            raise _Refused(line, f"alias *{anchor} nests deeper than {MAX_DEPTH} levels")
    values, depth = _measure(root, size)
    if values > MAX_VALUES or depth > MAX_DEPTH:
        line, anchor, _ = max(aliases, key=lambda a: size[id(a[2])][0])
        what = (
            f"expand the file to more than {MAX_VALUES} values"
            if values > MAX_VALUES
            else f"nest the file deeper than {MAX_DEPTH} levels"
        )
        raise _Refused(line, f"aliases {what} (at alias *{anchor})")


def _measure(node: Node, size: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """Expanded value count and depth of ``node``, memoised; iterative, so never too deep."""
    stack: list[tuple[Node, bool]] = [(node, False)]
    open_: set[int] = set()
    while stack:
        current, done = stack.pop()
        key = id(current)
        if key in size:
            continue
        children = _children(current)
        if done:
            open_.discard(key)
            counts = [size[id(c)] for c in children]
            size[key] = (
                min(1 + sum(c[0] for c in counts), MAX_VALUES + 1),
                1 + max((c[1] for c in counts), default=0),
            )
            continue
        if key in open_:
            raise RecursionError  # a cycle: an alias inside the node it names
        open_.add(key)
        stack.append((current, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(node)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


class _Builder:
    """Nodes → dicts, lists and scalars, noting each path's line and each duplicate key."""

    def __init__(self, yaml: YAML, file: str, document: YamlDocument) -> None:
        self.constructor = yaml.constructor
        self.file = file
        self.document = document

    def problem(self, line: int, loc: Loc, message: str) -> None:
        problem = ConfigProblem(self.file, line, format_loc(loc), message)
        if problem not in self.document.problems:  # an aliased node is built once per use
            self.document.problems.append(problem)

    def build(self, node: Node, loc: Loc) -> Any:
        line = node.start_mark.line + 1
        self.document.lines[loc] = line
        if isinstance(node, MappingNode):
            if node.tag != _MAP:
                self.problem(line, loc, f"unsupported tag {node.tag}")
            return self.mapping(node, loc)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self.problem(line, loc, f"unsupported tag {node.tag}")
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)  # the composer makes only these three kinds
        return self.scalar(node, loc)

    def scalar(self, node: ScalarNode, loc: Loc) -> Any:
        if node.tag not in _SCALARS:
            self.problem(node.start_mark.line + 1, loc, f"unsupported tag {node.tag}")
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ConstructorError, ValueError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.problem(node.start_mark.line + 1, loc, f"malformed value: {reason}")
            return node.value

    def mapping(self, node: MappingNode, loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                result.update(self.merged(value_node, loc))
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(key_line, loc, "a key must be a single value, not a list or mapping")
                continue
            key = self.scalar(key_node, loc)
            name = key_node.value
            if key in seen:
                self.problem(
                    key_line,
                    (*loc, name),
                    f"duplicate key {name!r} (lines {seen[key]} and {key_line})",
                )
                # The later value wins, as in PyYAML; forget the lines of the earlier one.
                lines = self.document.lines
                for stale in [p for p in lines if p[: len(loc) + 1] == (*loc, name)]:
                    del lines[stale]
            seen[key] = key_line
            result[key] = self.build(value_node, (*loc, name))
            self.document.lines[(*loc, name)] = key_line
        return result

    def merged(self, merge: Node, loc: Loc) -> dict[Any, Any]:
        """``<<: *base`` or ``<<: [*a, *b]``: the keys they give, the earlier source winning."""
        result: dict[Any, Any] = {}
        sources = merge.value if isinstance(merge, SequenceNode) else [merge]
        for source in reversed(sources):
            if isinstance(source, MappingNode):
                result.update(self.mapping(source, loc))
            else:
                self.problem(source.start_mark.line + 1, loc, "`<<` merges mappings only")
        return result
