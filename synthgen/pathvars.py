"""Which environment variables a spec path may expand, and how a path is shown in messages.

A spec path such as ``${SYNTHGEN_HOME}/demo/patients.csv`` expands ``SYNTHGEN_HOME`` and the
variables the spec lists in ``source.path_vars``, nothing else. Expanding any variable would let
``path: /nonexistent/${SYNTHGEN_KEK_ANALYST}`` print a key in "source file not found". A variable
whose name marks a secret (``*_KEK_*``, ``*SECRET*``, ``*PASSWORD*``, ``*TOKEN*``, ``*_KEY*``,
``*_URL``, ``*_DSN``, ``*CREDENTIAL*``, ...) or that the spec names as a credential (``password_env``,
``url_env``) never expands, even when listed; nor does a value holding a URL with credentials.
The expanded path becomes the budget ledger's key, which messages and ``budget show`` print.
Messages show the path as written (the template), never the expanded value.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable

from synthgen.errors import SpecError

#: Always expandable: synthgen's home (defaults to ``./.synthgen`` when unset).
ALWAYS = ("SYNTHGEN_HOME",)

_SECRET_NAME = re.compile(
    r"(^|_)KEK(_|$)|SECRET|PASSW(OR)?D|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|(^|_)PGPASS"
    r"|(^|_)KEYS?(_|$)|(^|_)URLS?(_|$)|(^|_)URI(_|$)|DSN|(^|_)CONN(ECTION)?(_|$)",
    re.IGNORECASE,
)
#: A value that carries credentials in a URL (``scheme://user:pw@host``): never expands.
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s]*@")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_secret(name: str) -> bool:
    """Does this variable name mark a secret (a KEK, a password, a token, ...)?"""
    return bool(_SECRET_NAME.search(name))


def check_declared(names: Iterable[str], credentials: Iterable[str | None] = ()) -> None:
    """Validate ``source.path_vars``: plain names, none secret-looking, none a credential variable."""
    creds = {c for c in credentials if c}
    for name in names:
        if not _VAR_NAME.match(name):
            raise ValueError(f"{name[:60]!r} is not an environment variable name")
        if looks_secret(name) or name in creds:
            raise ValueError(f"{name} names a secret; secrets never expand in a path")


def referenced(template: str) -> list[str]:
    """The variable names ``$VAR`` / ``${VAR}`` in ``template``, in order."""
    names = []
    for m in string.Template.pattern.finditer(template):
        name = m.group("named") or m.group("braced")
        if name:
            names.append(name)
    return names


def refusal(template: str, allowed: Iterable[str] = ()) -> str | None:
    """Why ``template`` cannot expand (the first variable outside the allow-list), or ``None``."""
    allow = set(ALWAYS) | set(allowed)
    for name in referenced(template):
        if looks_secret(name):
            return f"${{{name}}} names a secret, which never expands in a path"
        if name not in allow:
            return f"${{{name}}} does not expand: list it in source.path_vars (SYNTHGEN_HOME always does)"
    return None


def expand(template: str, allowed: Iterable[str] = (), *, field: str = "source.path") -> str:
    """Expand the allow-listed variables in ``template``; any other variable is a :class:`SpecError`.

    The error names the variable and the field, never a value.
    """
    from synthgen.zones import home_dir

    allowed = list(allowed)
    why = refusal(template, allowed)
    if why is not None:
        raise SpecError(f"{field}: {why}")
    allow = set(ALWAYS) | set(allowed)
    env = {k: v for k, v in os.environ.items() if k in allow}
    for name in referenced(template):
        if _USERINFO.search(env.get(name, "")):
            raise SpecError(
                f"{field}: ${{{name}}} holds a URL with credentials, which never expands in a path"
            )
    env.setdefault("SYNTHGEN_HOME", str(home_dir()))
    return string.Template(template).safe_substitute(env)


def shown(template: str, resolved: os.PathLike[str] | str) -> str:
    """How a path appears in a message: the template if it used variables, else the resolved path."""
    return template if referenced(template) else str(resolved)
