"""Command-line flags that also read an environment variable, and say so.

Every flag of `jumpgate` is declared as a `Flag`: its help line ends with its default and the variable it
reads, e.g. `(default: 8080; env: JUMPGATE_PORT)`. The command line wins over the variable, the variable
over the default. Variables are read after parsing and only for the subcommand that runs, so a bad value in
one (JUMPGATE_PORT=abc) stops `jumpgate serve` with a message naming the variable, and nothing else.
An empty variable counts as unset (containers often pass `-e NAME=` to clear one).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: `--flag` values are cut to this many characters when echoed in an error
_ECHO = 64
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


def _echo(raw: str) -> str:
    return repr(raw if len(raw) <= _ECHO else raw[:_ECHO] + "...")


def _digits(raw: str) -> int | None:
    """Plain ASCII digits only: int() would also take " 80", "8_0" and other scripts' digits."""
    return int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else None


def port(raw: str) -> int:
    """A TCP port to listen on: 1-65535 (0, "any free port", would leave the user without an address)."""
    value = _digits(raw)
    if value is None:
        raise argparse.ArgumentTypeError(f"{_echo(raw)} is not a port number (1-65535)")
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def workers(raw: str) -> int:
    value = _digits(raw)
    if value is None:
        raise argparse.ArgumentTypeError(f"{_echo(raw)} is not a number of worker processes (1-64)")
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value} worker processes: give 1-64 (scale further with replicas)")
    return value


def host(raw: str) -> str:
    """An IP address or a host name, as uvicorn binds it; the bind itself reports a name that does not resolve."""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"{_echo(raw)} is not an IP address or host name to listen on")
    return raw


def url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")) or len(raw) > 2048 or any(c.isspace() for c in raw):
        raise argparse.ArgumentTypeError(f"{_echo(raw)} is not an http:// or https:// URL")
    return raw.rstrip("/")


def one_of(*choices: str) -> Callable[[str], str]:
    def check(raw: str) -> str:
        if raw not in choices:
            raise argparse.ArgumentTypeError(f"{_echo(raw)} is not one of: {', '.join(choices)}")
        return raw

    check.__name__ = "|".join(choices)
    return check


def switch(raw: str) -> bool:
    """An on/off environment value (the flag itself takes none)."""
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{_echo(raw)} is not one of 1, true, yes, on, 0, false, no, off")


@dataclass(frozen=True)
class Flag:
    """One option. `convert` parses the command-line or environment text; `switch` makes an on/off flag.
    `shown` describes the default when it is not a plain value; `passive` marks a variable that another
    library reads itself (boto3's AWS_PROFILE): the help names it, jumpgate does not read it."""

    name: str
    help: str
    env: str
    default: Any = None
    convert: Callable[[str], Any] = str
    shown: str | None = None
    metavar: str | None = None
    passive: bool = False
    repeat: bool = False  # may be given several times; its variable holds a comma-separated list

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    def help_line(self) -> str:
        shown = self.shown if self.shown is not None else ("off" if self.convert is switch else self.default)
        return f"{self.help} (default: {shown}; env: {self.env})"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, without breaking lines inside hyphenated words (--allow-unauthenticated stays whole)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    """Declare `flags` on `parser`; `resolve` fills in the environment and defaults after parsing."""
    for flag in flags:
        if flag.convert is switch:
            parser.add_argument(flag.name, action="store_const", const=True, default=None, help=flag.help_line())
        elif flag.repeat:
            parser.add_argument(flag.name, type=flag.convert, action="append", default=None, metavar=flag.metavar,
                                help=flag.help_line())
        else:
            parser.add_argument(flag.name, type=flag.convert, default=None, metavar=flag.metavar,
                                help=flag.help_line())
    parser.set_defaults(flags_=tuple(flags), parser_=parser)


def resolve(args: argparse.Namespace, environ: dict[str, str] | None = None) -> None:
    """Each flag left off the command line takes its variable's value, else its default. A bad value exits 2
    with the variable's name (argparse's own way of refusing a bad flag)."""
    env = os.environ if environ is None else environ
    for flag in getattr(args, "flags_", ()):
        if getattr(args, flag.dest) is not None:
            continue
        raw = "" if flag.passive else env.get(flag.env.split(",")[0], "")
        value = flag.default
        if raw:
            try:
                value = [flag.convert(v.strip()) for v in raw.split(",") if v.strip()] if flag.repeat \
                    else flag.convert(raw)
            except argparse.ArgumentTypeError as exc:
                args.parser_.error(f"environment variable {flag.env}: {exc}")
        setattr(args, flag.dest, value)
