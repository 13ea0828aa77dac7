"""Bounded YAML loading for specs and policy files.

``yaml.safe_load`` shares aliased nodes, so a few hundred bytes of nested anchors (a "billion
laughs" alias bomb) become a structure with millions of paths: validating or printing it hangs
or produces megabyte error lines. Specs and policies are small hand-written files, so this
module refuses a file over :data:`MAX_BYTES`, more than :data:`MAX_ALIASES` aliases (merge keys
``<<: *x`` are aliases too), or a document that would expand to more than :data:`MAX_NODES`
nodes, before anything is constructed from it.

A mapping that repeats a key is refused too (:class:`DuplicateKeyError`, with both lines):
PyYAML keeps the last value silently, so ``epsilon: 1`` followed later by ``epsilon: 10``
would run with 10 while a reviewer reads 1. Keys brought in by a merge (``<<: *base``) may
still be overridden: that is what a merge is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: Largest spec or policy file read (bytes).
MAX_BYTES = 256 * 1024
#: Most aliases (``*name``, including merge keys) one document may use.
MAX_ALIASES = 50
#: Most nodes the document may expand to once aliases are followed.
MAX_NODES = 20_000
#: Deepest nesting of lists and mappings (the YAML composer and pydantic recurse).
MAX_DEPTH = 40
#: Longest piece of the input an error message may quote.
MAX_QUOTE = 80


class YamlLimitError(ValueError):
    """The document is over a size, alias or expansion limit (the message says which)."""


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping repeats a key. ``problem_mark`` is the repeat (a ``yaml.MarkedYAMLError``, so
    callers that report ``file:line: problem`` for invalid YAML report this the same way)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping repeating one of its own keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base class refuses it
                    continue
                if seen is not key_node:
                    raise DuplicateKeyError(
                        None,
                        None,
                        f"duplicate key {quote(key)} (first on line {seen.start_mark.line + 1}); "
                        "keep one: YAML would silently use the last",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep)


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """``repr(value)``, cut to ``limit`` characters so an error never reprints a large input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document with aliases followed, computed once per distinct node (linear).

    Raises :class:`YamlLimitError` for an alias inside its own anchor (a recursive structure).
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            sizes[key] = min(total, MAX_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in open_:
            raise YamlLimitError("a YAML alias refers to its own anchor (a recursive structure)")
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _scan(text: str) -> None:
    """Refuse too many aliases or too deep a nesting from the event stream (no recursion, no nodes)."""
    aliases = depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlLimitError(
                    f"more than {MAX_ALIASES} YAML aliases (*name / <<: *name); write the values out"
                )
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def read_text(path: Path) -> str:
    """A file's UTF-8 text, refusing one over :data:`MAX_BYTES` without reading it all.

    Raises :class:`YamlLimitError` (too large) or ``UnicodeDecodeError``.
    """
    with open(path, "rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise YamlLimitError(f"file is over the {MAX_BYTES:,}-byte limit")
    return raw.decode("utf-8")


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """Parse one YAML document within the limits: ``(data, root node)``.

    Raises :class:`YamlLimitError` over a limit and ``yaml.YAMLError`` for invalid YAML,
    including :class:`DuplicateKeyError` for a mapping that repeats a key.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise YamlLimitError(f"file is {size:,} bytes; the limit is {MAX_BYTES:,}")
    _scan(text)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return None, None
    if _expanded_size(root) > MAX_NODES:
        raise YamlLimitError(
            f"the YAML aliases expand to more than {MAX_NODES:,} values; write the values out"
        )
    loader = _StrictLoader(text)
    try:
        data = loader.construct_document(root)
    finally:
        loader.dispose()
    return data, root
