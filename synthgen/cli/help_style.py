"""Help that reads like a command line: flags without a type, arguments as ``SPEC``, workflow order.

Typer 0.29's help prints every flag with a type (``--debug <bool>``) and wraps required
arguments in braces in the usage line (``synthgen run [OPTIONS] {spec}``). Both only change
how help is drawn, not parsing: a flag gets no type column, an argument is shown in capitals,
required as ``SPEC``, optional as ``[SPEC]``.

Typer also lists a group's plain commands before its sub-apps (``spec``, ``keys``), whatever
order they were registered in; :class:`WorkflowGroup` lists them in registration order instead,
so ``synthgen --help`` reads in the order a user works.
"""

from __future__ import annotations

from typing import Any

from typer import core

__all__ = ["WorkflowGroup", "apply"]

_APPLIED = {"done": False}


def _option_type(self: Any, ctx: Any) -> str | None:
    if getattr(self, "is_flag", False) and self.metavar is None:
        return None
    return _ORIGINAL_OPTION_TYPE(self, ctx)


def _argument_usage(self: Any) -> str:
    name = (self.metavar or self.name or "").upper()
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _argument_name(self: Any) -> str:
    name = (self.metavar or self.name or "").upper()
    return name + ("..." if self.metavar is None and self.nargs != 1 else "")


_ORIGINAL_OPTION_TYPE = core.TyperOption.display_type_rich


class WorkflowGroup(core.TyperGroup):
    """A command group that lists commands and sub-apps in the order they were registered.

    The app sets :attr:`order` to its registration order (names); a name missing from it
    (none today) comes last, in Typer's own order.
    """

    order: tuple[str, ...] = ()

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(self.order)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))


def apply() -> None:
    """Install the help style (idempotent)."""
    if _APPLIED["done"]:
        return
    core.TyperOption.display_type_rich = _option_type  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]
    _APPLIED["done"] = True
