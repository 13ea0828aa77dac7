"""Secrets by name: the environment first, then the secrets file (``SYNTHGEN_SECRETS_FILE``).

The file is YAML, ``NAME: value`` at the top level, mode 0600. It holds passwords, so no error
about it may quote it: a YAML parser's message reprints the offending line (``password: "abc``),
so a parse error names only the file, the line and column and the kind of problem, and is
raised ``from None`` so no chained traceback carries the parser's message either. A value of
the wrong type names its key, never the value. Every such error is a :class:`SecretsError`
(exit 2: the file is configuration).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from synthgen import safe_yaml
from synthgen.errors import SecretsError

#: What each PyYAML error class means, in words that quote nothing from the file.
_YAML_PROBLEMS: tuple[tuple[type[yaml.YAMLError], str], ...] = (
    (yaml.scanner.ScannerError, "an unclosed quote, a tab or a character YAML cannot start a value with"),
    (yaml.parser.ParserError, "a line out of place (check the indentation and the ':' after each name)"),
    (yaml.composer.ComposerError, "an undefined or repeated anchor"),
    (yaml.constructor.ConstructorError, "a value YAML cannot build"),
)


def secret(name: str) -> str | None:
    """The secret ``name``: the environment first, then ``SYNTHGEN_SECRETS_FILE``; None if neither has it.

    Raises :class:`SecretsError` when the file is missing, readable by others, not valid YAML,
    not a mapping, or gives ``name`` a value that is not a string.
    """
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get("SYNTHGEN_SECRETS_FILE")
    if not path:
        return None
    data = _load(Path(path))
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        # YAML reads 0777 as 511 and yes as True: a password must come through exactly as written.
        raise SecretsError(
            f"secrets file {path}: the value of {name} is a {_kind(value)}, not a string; quote it"
        )
    return value


def _load(p: Path) -> dict[object, object]:
    if not p.is_file():
        raise SecretsError(f"SYNTHGEN_SECRETS_FILE {p} does not exist")
    if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsError(f"secrets file {p} is readable by others; chmod 600 it")
    try:
        data, _ = safe_yaml.load(safe_yaml.read_text(p))
    except yaml.YAMLError as exc:
        raise SecretsError(f"secrets file {p}: {_where(exc)}; its content is not shown") from None
    except safe_yaml.YamlLimitError as exc:  # its messages quote nothing from the file
        raise SecretsError(f"secrets file {p}: {exc}") from None
    except UnicodeDecodeError:
        raise SecretsError(f"secrets file {p}: not a UTF-8 text file") from None
    except OSError as exc:
        raise SecretsError(f"secrets file {p} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SecretsError(f"secrets file {p}: expected NAME: value lines at the top level")
    return data


def _where(exc: yaml.YAMLError) -> str:
    """'not valid YAML at line L, column C (kind)': the position and kind, never the parser's text."""
    mark = getattr(exc, "problem_mark", None)
    start = getattr(exc, "context_mark", None)
    mark = mark or start
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if start is not None and mark is not None and start.line != mark.line:  # an unclosed quote ends at EOF
        at += f", in what starts at line {start.line + 1}"
    kind = next((why for cls, why in _YAML_PROBLEMS if isinstance(exc, cls)), "invalid YAML")
    return f"not valid YAML{at} ({kind})"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | dict):
        return "list" if isinstance(value, list) else "mapping"
    return type(value).__name__
