"""Name patterns of policy rules (``resources.name``): what a pattern covers, and which are refused.

A rule's name pattern is matched against the *whole* resource name, case-sensitively:

* ``*`` any run of characters, none included, ``/`` and a leading ``.`` included;
* ``?`` exactly one character (``/`` too);
* ``[abc]``, ``[a-z]`` one character of the class; ``[!a-z]`` / ``[^a-z]`` one character not in it;
* ``{a,b,c}`` any one of the alternatives (each may hold wildcards and nested braces);
* ``\\x`` the character ``x`` itself (``\\*``, ``\\[``, ``\\{``, ``\\,``, ``\\\\``);
* every other character stands for itself (``!`` and ``|`` have no meaning).

Resource names are not all single words: a budget cap's resource is the source key
(``id:hospital-a/visits``, ``csv:/data/visits.csv``). casbin's ``globMatch`` treated ``/`` as a
path separator (``*`` stopped at it, ``*`` never matched a name starting with ``/`` or ``.``), so
a deny on ``id:hospital-a*`` missed ``id:hospital-a/visits`` while an allow on ``id:*/*`` still
reached it: deny-overrides could be sidestepped. Here ``/`` is an ordinary character.

A pattern whose meaning could be misread is refused when the policy file loads, never guessed at
enforcement time: an unclosed ``[`` or ``{``, a stray ``]`` or ``}``, an empty class, a reversed
range (``[z-a]``), a ``{...}`` without a ``,`` (``{1..3}`` is not a range here), a lone trailing
``\\``, ``[ { } ,`` unescaped inside a class (brace expansion would split it), or more than
:data:`MAX_ALTERNATIVES` alternatives after brace expansion.

Matching is wcmatch's ``fnmatch`` with ``BRACE | DOTMATCH | CASE | FORCEUNIX`` (no ``NEGATE``,
``EXTMATCH`` or ``SPLIT``); :func:`check_name_pattern` admits only patterns on which it means
exactly the above.
"""

from __future__ import annotations

from collections.abc import Callable

from wcmatch import fnmatch
from wcmatch._wcparse import PatternLimitException  # the only public raiser is compile()

FLAGS = fnmatch.BRACE | fnmatch.DOTMATCH | fnmatch.CASE | fnmatch.FORCEUNIX
#: Most alternatives one pattern may expand to (``{a,b}{c,d}`` is four).
MAX_ALTERNATIVES = 1000
#: Longest pattern accepted (catalog names are at most 200 characters).
MAX_PATTERN = 256
_CLASS_ESCAPE = "[{},"


class NamePatternError(ValueError):
    """A name pattern is malformed; the message says where and why."""


def check_name_pattern(pattern: str) -> None:
    """Refuse a malformed or ambiguous name pattern with :class:`NamePatternError`."""
    if not pattern:
        raise NamePatternError("name pattern is empty; use '*' for every name")
    if len(pattern) > MAX_PATTERN:
        raise NamePatternError(f"name pattern is over {MAX_PATTERN} characters")
    groups: list[bool] = []  # one per open '{': has it a top-level ',' yet?
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            _escaped(pattern, i)
            i += 2
            continue
        if c == "[":
            i = _class_end(pattern, i)
        elif c == "{":
            groups.append(False)
        elif c == "," and groups:
            groups[-1] = True
        elif c == "}":
            if not groups:
                _fail(pattern, f"'}}' at position {i + 1} closes no '{{' (write \\}} for the character)")
            if not groups.pop():
                _fail(pattern, "'{...}' needs two or more alternatives separated by ',' ({1..3} is no range)")
        elif c == "]":
            _fail(pattern, f"']' at position {i + 1} closes no '[' (write \\] for the character)")
        i += 1
    if groups:
        _fail(pattern, "'{' is never closed")
    try:
        fnmatch.compile(pattern, flags=FLAGS, limit=MAX_ALTERNATIVES)
    except PatternLimitException:
        _fail(pattern, f"expands to more than {MAX_ALTERNATIVES} alternatives")


def compile_name_pattern(pattern: str) -> Callable[[str], bool]:
    """A whole-name, case-sensitive matcher for a pattern that :func:`check_name_pattern` admits."""
    check_name_pattern(pattern)
    matcher = fnmatch.compile(pattern, flags=FLAGS, limit=MAX_ALTERNATIVES)
    return lambda name: bool(matcher.match(name))


def _fail(pattern: str, reason: str) -> None:
    raise NamePatternError(f"name pattern {pattern!r}: {reason}")


def _escaped(pattern: str, i: int) -> str:
    if i + 1 >= len(pattern):
        _fail(pattern, "ends in a lone '\\' (write \\\\ for the character)")
    return pattern[i + 1]


def _class_end(pattern: str, start: int) -> int:
    """Index of the ']' closing the class that opens at ``start``."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "!^":
        i += 1
    first = True
    while i < len(pattern):
        if pattern[i] == "]":
            if first:
                _fail(pattern, f"empty class {pattern[start : i + 1]!r} (write \\] for the character ']')")
            return i
        low, i = _class_char(pattern, i, first=first)
        if pattern.startswith("-", i) and i + 1 < len(pattern) and pattern[i + 1] != "]":
            high, i = _class_char(pattern, i + 1, first=False)
            if high < low:
                _fail(pattern, f"range {low}-{high} runs backwards; write {high}-{low}")
        first = False
    _fail(pattern, f"'[' at position {start + 1} is never closed (write \\[ for the character)")
    raise AssertionError  # unreachable: _fail raises


def _class_char(pattern: str, i: int, *, first: bool) -> tuple[str, int]:
    """One character of a class at ``i`` and the index after it."""
    c = pattern[i]
    if c == "\\":
        return _escaped(pattern, i), i + 2
    if c in _CLASS_ESCAPE:
        _fail(pattern, f"write \\{c} for '{c}' inside [...]")
    last = pattern.startswith("]", i + 1)
    if c == "-" and not (first or last):
        _fail(pattern, "a '-' inside [...] must come first, last, or in a range like a-z")
    return c, i + 1
