"""The command line's shared parts: argument types that check a value and say what was
expected, the one-line-error parser, the subcommand and date-filter options, and the one-line
description of an error.

It parses and describes only: it never loads, serves, sends or reads the environment.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, NoReturn

from ..errors import ConfigurationError, DFSError
from ..simulator.seed import MAX_ERROR_SPREAD

PROG = "dfs-analytics"
MAX_WORK_ORDERS = 1_000_000
# dates a pandas Timestamp can hold, with a day to spare for time zones
FIRST_DATE = datetime(1678, 1, 1, tzinfo=timezone.utc)
LAST_DATE = datetime(2262, 1, 1, tzinfo=timezone.utc)


class UsageError(ConfigurationError):
    """A command-line argument is wrong; nothing was loaded, served or sent."""


# --------------------------------------------------------------------------------------------
# Argument types: each one checks a value and says what was expected
# --------------------------------------------------------------------------------------------


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def argument_type(
    parse: Callable[[str], Any], accept: Callable[[Any], bool], expected: str, name: str
) -> Callable[[str], Any]:
    """An argparse ``type=``: ``parse`` the text, then refuse a value ``accept`` rejects,
    saying ``expected ...``; returns the checker, named ``name``."""

    def check(text: str) -> Any:
        value = parse(text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    check.__name__ = check.__qualname__ = name
    check.__doc__ = f"Returns the value of an argument that must be {expected}."
    return check


#: A share between 0 and 1 (``--fault-rate 0.05``).
rate = argument_type(number, lambda v: 0 <= v <= 1, "a share between 0 and 1", "rate")
#: A non-negative, finite number (seconds, requests per second, a multiplier).
seconds = argument_type(number, lambda v: v >= 0, "a number >= 0", "seconds")
#: A rate of bytes above 0 (``--slow-body-bps 100``).
bytes_per_second = argument_type(number, lambda v: v > 0, "a number > 0", "bytes_per_second")
#: A number of work orders: a whole number from 0 to ``MAX_WORK_ORDERS``.
count = argument_type(
    integer,
    lambda v: 0 <= v <= MAX_WORK_ORDERS,
    f"a whole number from 0 to {MAX_WORK_ORDERS:,}",
    "count",
)
#: The spread of the simulator's clustered AI errors.
spread = argument_type(
    number,
    lambda v: 0 <= v <= MAX_ERROR_SPREAD,
    f"a number from 0 to {MAX_ERROR_SPREAD:g}",
    "spread",
)
#: A whole number >= 1.
positive = argument_type(integer, lambda v: v >= 1, "a whole number >= 1", "positive")
#: A whole number >= 0.
non_negative = argument_type(integer, lambda v: v >= 0, "a whole number >= 0", "non_negative")
#: A TCP port, 0 (any free port) to 65535.
port = argument_type(integer, lambda v: 0 <= v <= 65535, "a port from 0 to 65535", "port")


#: A confidence level strictly between 0 and 1 (``0.95``).
def is_level(value: float) -> bool:
    from ..audit import z_value  # the audit's own rule for a level

    try:
        z_value(value)
    except ConfigurationError:
        return False
    return True


level = argument_type(
    number,
    is_level,
    "a confidence level between 0 and 1 such as 0.95 (at most 0.9999999999)",
    "level",
)


def date(text: str) -> str:
    """An ISO-8601 date or date-time (``2026-03-01``, ``2026-03-01T08:00:00Z``), kept as given."""
    parse_date(text)
    return text.strip()


def parse_date(text: str) -> datetime:
    value = text.strip()
    try:
        d = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 date such as 2026-03-01 or 2026-03-01T08:00:00Z, got {text!r}"
        ) from None
    try:
        d = d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+05:00 is before the first UTC date
        d = datetime.min.replace(tzinfo=timezone.utc)
    if not FIRST_DATE <= d < LAST_DATE:
        raise argparse.ArgumentTypeError(
            f"expected a date from {FIRST_DATE:%Y-%m-%d} to {LAST_DATE:%Y-%m-%d} (what pandas "
            f"can hold), got {text!r}"
        )
    return d


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), raised as UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def debug_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="on an error, print the traceback as well as the one-line message",
    )


def command(
    sub: argparse._SubParsersAction, name: str, summary: str, description: str | None = None
) -> argparse.ArgumentParser:
    """The parser of subcommand ``name`` (defaults shown in its help, ``--debug`` accepted
    after the subcommand too); returns it for its own arguments."""
    p = sub.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    debug_option(p, argparse.SUPPRESS)
    return p


def date_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--created-after", type=date, help="only work orders created at or after this date"
    )
    p.add_argument("--created-before", type=date, help="only work orders created before this date")


def filters(args: argparse.Namespace) -> dict[str, str]:
    filters = {"created_after": args.created_after, "created_before": args.created_before}
    return {k: v for k, v in filters.items() if v}


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, for the end of ``dfs-analytics: error: ``."""
    if isinstance(exc, OSError) and not isinstance(exc, DFSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror}{where}"
    elif isinstance(exc, (DFSError, ValueError)):
        text = str(exc) or type(exc).__name__
    elif isinstance(exc, ImportError):
        text = f"a needed package is missing: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())
