"""``pach-airflow``: a pachctl-like command line.

Commands read like pachctl's: a verb and a noun (``create repo``, ``put file``, ``list datum``),
with ``repo@branch:/path`` addressing. Each command module registers its commands with :func:`command`;
this module builds the argparse tree from them. Command modules import nothing heavy at module level
(no Airflow, boto3 or pydantic) so that ``pach-airflow --help`` starts fast; they import inside the
command function.

Exit codes: 0 success, 1 a user error (a :class:`~pach_airflow.errors.PachAirflowError`, printed
without a traceback), 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

COMMAND_MODULES = (
    "pach_airflow.cli.spec_cmds",
    "pach_airflow.cli.pfs_cmds",
    "pach_airflow.cli.datum_cmds",
    "pach_airflow.cli.pps_cmds",
    "pach_airflow.cli.worker_cmds",
)


class Arg(NamedTuple):
    """One argparse argument: ``Arg("-o", "--output", default="table")``."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def arg(*flags: str, **kwargs: Any) -> Arg:
    return Arg(flags, kwargs)


OUTPUT_ARG = arg("-o", "--output", choices=("table", "json"), default="table",
                 help="table for people (default) or json: one JSON object per line")


class Command(NamedTuple):
    verb: str
    noun: str | None
    help: str
    args: Sequence[Arg]
    run: Callable[[argparse.Namespace], int | None]


_COMMANDS: dict[tuple[str, str | None], Command] = {}


def command(verb: str, noun: str | None = None, *, help: str, args: Sequence[Arg] = ()) -> Callable:
    """Register ``fn(namespace) -> exit code | None`` as ``pach-airflow VERB [NOUN]``."""

    def register(fn: Callable[[argparse.Namespace], int | None]) -> Callable:
        key = (verb, noun)
        if key in _COMMANDS:
            raise RuntimeError(f"command {verb} {noun} registered twice")
        _COMMANDS[key] = Command(verb, noun, help, tuple(args), fn)
        return fn

    return register


def build_parser() -> argparse.ArgumentParser:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != name:
                raise
    parser = argparse.ArgumentParser(
        prog="pach-airflow",
        description="Run Pachyderm pipeline specs on Apache Airflow: repos, commits, files, pipelines, jobs, datums.",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="store URL: file:///dir or s3://bucket/prefix (default: $PACH_AIRFLOW_STORE, "
        "else file://~/.pach-airflow/store)",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.required = True
    by_verb: dict[str, Any] = {}  # verb -> its noun subparsers
    nouns_of: dict[str, list[str]] = {}
    for verb, noun in _COMMANDS:
        if noun is not None:
            nouns_of.setdefault(verb, []).append(noun)
    for (verb, noun), cmd in sorted(_COMMANDS.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if noun is None:
            sub = verbs.add_parser(verb, help=cmd.help, description=cmd.help)
            _add_args(sub, cmd)
            continue
        if verb not in by_verb:
            vp = verbs.add_parser(verb, help=f"{verb} {' | '.join(sorted(nouns_of[verb]))}")
            nouns = vp.add_subparsers(dest="noun", metavar="NOUN")
            nouns.required = True
            by_verb[verb] = nouns
        sub = by_verb[verb].add_parser(noun, help=cmd.help, description=cmd.help)
        _add_args(sub, cmd)
    return parser


def _add_args(sub: argparse.ArgumentParser, cmd: Command) -> None:
    for a in cmd.args:
        sub.add_argument(*a.flags, **a.kwargs)
    sub.set_defaults(_command=cmd)


def main(argv: Sequence[str] | None = None) -> int:
    from pach_airflow.errors import PachAirflowError

    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.store:
        os.environ["PACH_AIRFLOW_STORE"] = ns.store
    try:
        code = ns._command.run(ns)
    except PachAirflowError as exc:
        print(f"pach-airflow: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


def run() -> None:
    sys.exit(main())
