"""Typed option records.

Every group of export options (the run's own in ``ExportSpec``, the preprocessing
record's, the accuracy check's, calibration's, each target's) is a frozen dataclass
whose fields are declared with :func:`option`: the flag, how a value is read
(``parse``, which takes text from the command line or a value from the Python API),
the default and the help live on the field, in one place. The CLI builds its parser
from these records (:func:`add_arguments`) and the Python API takes the same names as
keywords; every record reads its values through :func:`coerce` when it is built, so a
value is read and checked the same way whichever way it came.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ExportError


@dataclass(frozen=True)
class OptionInfo:
    """What the CLI and the API need to know about one option field."""

    help: str
    parse: Callable[[Any], Any] | None = None  # text or value -> value; ValueError says what is wrong
    flag: str | None = None  # default: --<name with dashes>
    metavar: str | None = None
    choices: tuple | None = None
    default_text: str | None = None  # how --help states a default the value alone does not say


class OptionRecord:
    """Base of every option record: values are read by their declarations on
    construction (so a record built in code is held to them as the CLI's is)."""

    def __post_init__(self) -> None:
        for f, _ in declared(type(self)):
            object.__setattr__(self, f.name, coerce(f, getattr(self, f.name)))


def option(default: Any, help: str, **info: Any) -> Field:
    """A dataclass field declared as an option (see :class:`OptionInfo` for ``info``)."""
    return field(default=default, metadata={"option": OptionInfo(help, **info)})


def group(cls: type, title: str) -> Field:
    """A dataclass field holding a nested option record, shown as one ``--help`` group."""
    return field(default_factory=cls, metadata={"group": title})


def declared(cls: type) -> list[tuple[Field, OptionInfo]]:
    """The option fields of a record, in declaration order."""
    return [(f, f.metadata["option"]) for f in fields(cls) if "option" in f.metadata]


def groups(cls: type) -> list[tuple[Field, str]]:
    """The nested option records of a record: (field, title)."""
    return [(f, f.metadata["group"]) for f in fields(cls) if "group" in f.metadata]


def flag_of(f: Field) -> str:
    return f.metadata["option"].flag or "--" + f.name.replace("_", "-")


def _default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def _is_switch(f: Field, info: OptionInfo) -> bool:
    return info.parse is None and _default(f) is False


def coerce(f: Field, value: Any) -> Any:
    """``value`` read by the field's ``parse`` and held to its ``choices``; a one-line
    ExportError naming the flag when it does not fit. None stays None where None is the default."""
    info: OptionInfo = f.metadata["option"]
    if value is None and _default(f) is None:
        return None
    if _is_switch(f, info):
        if not isinstance(value, bool):
            raise ExportError(f"{flag_of(f)} takes True or False, got {value!r}")
        return value
    if info.parse is not None:
        try:
            value = info.parse(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
            raise ExportError(f"{flag_of(f)} {_shown(value)}: {e}") from None
    if info.choices is not None and value not in info.choices:
        raise ExportError(f"{flag_of(f)} {_shown(value)}: choose from {', '.join(map(str, info.choices))}")
    return value


def _shown(value: Any) -> str:
    """A value as one line: control characters escaped."""
    return repr(value) if isinstance(value, str) else str(value).encode("unicode_escape").decode("ascii")


def build(cls: type, values: dict[str, Any]) -> Any:
    """A record of ``cls`` from ``values`` (option name -> value), nested records
    included; names it uses are removed from ``values``."""
    kwargs = {f.name: values.pop(f.name) for f, _ in declared(cls) if f.name in values}
    for f, _ in groups(cls):
        kwargs[f.name] = build(f.default_factory, values)
    return cls(**kwargs)


def names(cls: type) -> list[str]:
    """Every option name of a record, nested records included."""
    return [f.name for f, _ in declared(cls)] + [n for f, _ in groups(cls) for n in names(f.default_factory)]


def add_arguments(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """One argument group per record (nested records get their own groups); arguments
    not given are absent from the parsed namespace (``argparse.SUPPRESS``), so that
    a value from the command line can be told from a default."""
    target = parser.add_argument_group(title) if title else parser
    for f, info in declared(cls):
        shown = info.default_text or _default_text(_default(f))
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=f"{info.help} (default: {shown})")
        if _is_switch(f, info):
            kwargs.update(action="store_const", const=True, help=info.help)
        else:
            kwargs.update(metavar=info.metavar or (None if info.choices else f.name.upper()))
            if info.choices is not None:
                kwargs["choices"] = info.choices if info.parse is None else None
        target.add_argument(flag_of(f), **kwargs)
    for f, title_of_group in groups(cls):
        add_arguments(parser, f.default_factory, title_of_group)


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "none"
    return str(value)


# Parsers shared by several records: each takes text (the CLI) or a value (the API).


def whole_number(low: int, high: int | None = None) -> Callable[[Any], int]:
    """A whole number in [low, high]."""

    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"expected a whole number, got {type(value).__name__}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if number < low or (high is not None and number > high):
            raise ValueError(f"expected {low} to {high}" if high is not None else f"expected at least {low}")
        return number

    return parse


def finite_number(low: float, high: float) -> Callable[[Any], float]:
    """A finite number in [low, high]."""

    def parse(value: Any) -> float:
        number = _finite(value)
        if not low <= number <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return number

    return parse


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def three_numbers(positive: bool = False) -> Callable[[Any], tuple[float, float, float]]:
    """Three finite numbers R,G,B (comma-separated text or a sequence)."""

    def parse(value: Any) -> tuple[float, float, float]:
        items = str(value).replace(" ", "").split(",") if isinstance(value, str) else value
        if not isinstance(items, Sequence) or len(items) != 3:
            raise ValueError("expected three comma-separated numbers (R,G,B)")
        numbers = tuple(_finite(v) for v in items)
        if positive and min(numbers) <= 0:
            raise ValueError("expected three positive numbers")
        return numbers

    return parse


def path(value: Any) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise ValueError("expected a path")
    return Path(value)


def comma_list(known: Sequence[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    """Known names (comma-separated text or a sequence), in ``known``'s order, each once."""

    def parse(value: Any) -> tuple[str, ...]:
        items = str(value).split(",") if isinstance(value, str) else list(value)
        chosen = [str(t).strip() for t in items if str(t).strip()]
        unknown = [n for n in chosen if n not in known]
        if unknown or not chosen:
            raise ValueError(f"unknown {what} {', '.join(unknown) or '(empty)'}; choose from {', '.join(known)}")
        return tuple(n for n in known if n in chosen)

    return parse
