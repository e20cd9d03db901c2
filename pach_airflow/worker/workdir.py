"""The work folder of one datum set, shared by stage, the shim and upload.

Owns: the layout (``docs/architecture.md``, "pach_airflow.worker"), the datum ``env`` file format and
the small files the shim writes (``state``, ``tries``, ``reason``, ``timing``, ``log``)::

    WORK/bin/busybox            WORK/shim.sh   WORK/stdin   WORK/err_stdin   WORK/set.json
    WORK/datums/<n>/env         one shell-quoted ``KEY=VALUE`` word per line, lines joined by `` \\``
                                continuation so that ``eval "set -- $(cat env)"`` reads them all
    WORK/datums/<n>/dotenv      the same variables unquoted, copied to ``/pfs/.env``
    WORK/datums/<n>/vars        both texts as shell assignments (``_envtext=...``, ``_dotenv=...``): what
                                the shim sources (one read, where ``read`` loops cost a syscall per byte)
    WORK/datums/<n>/inputs.json staged path -> [hash, size] (upload resolves symlinks into inputs with it)
    WORK/datums/<n>/pfs/<input>/<full path>
    WORK/datums/<n>/out/        made empty by stage; the datum's /pfs/out after the loop
    WORK/datums/<n>/state  tries  reason  timing  log
    WORK/done
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DatumDir", "WorkDir", "format_env_file", "parse_env_file"]

ENV_NAME_FORBIDDEN = ("=", "\0")


def format_env_file(pairs: Iterable[tuple[str, str]]) -> str:
    """``KEY=VALUE`` words, each shell-quoted, one per line (backslash-newline between them).

    Names may hold characters a shell assignment would refuse (``my-repo``): the shim passes the words
    to ``busybox env``, which sets them as Pachyderm's exec does.
    """
    words = []
    for k, v in pairs:
        if not k or any(c in k for c in ENV_NAME_FORBIDDEN) or "\0" in v:
            raise ValueError(f"environment variable {k!r} cannot be set (empty name, '=' or NUL)")
        words.append(shlex.quote(f"{k}={v}"))
    return " \\\n".join(words) + ("\n" if words else "")


def parse_env_file(text: str) -> list[tuple[str, str]]:
    """The inverse of :func:`format_env_file`: a list of ``(name, value)`` in file order."""
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            j = text.index("'", i + 1)
            cur.append(text[i + 1:j])
            in_word, i = True, j + 1
        elif c == '"':
            # shlex.quote writes a single quote as '"'"'; inside double quotes only \\ \" \$ \` escape.
            j, buf = i + 1, []
            while text[j] != '"':
                if text[j] == "\\" and text[j + 1] in '\\"$`':
                    j += 1
                buf.append(text[j])
                j += 1
            cur.append("".join(buf))
            in_word, i = True, j + 1
        elif c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i += 2  # continuation between words
        elif c == "\\":
            cur.append(text[i + 1])
            in_word, i = True, i + 2
        elif c in " \t\n":
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
        else:
            cur.append(c)
            in_word, i = True, i + 1
    if in_word:
        words.append("".join(cur))
    out = []
    for w in words:
        k, _, v = w.partition("=")
        out.append((k, v))
    return out


@dataclass(frozen=True)
class DatumDir:
    """``WORK/datums/<n>``."""

    path: Path

    @property
    def pfs(self) -> Path:
        return self.path / "pfs"

    @property
    def out(self) -> Path:
        return self.path / "out"

    def read(self, name: str, default: str = "") -> str:
        try:
            return (self.path / name).read_text(errors="replace")
        except FileNotFoundError:
            return default

    @property
    def state(self) -> str | None:
        s = self.read("state").strip()
        return s or None

    @property
    def recovered(self) -> bool:
        """An err_cmd succeeded after some attempt (the shim's ``recovered`` file): Pachyderm keeps such a
        datum RECOVERED even when a later attempt succeeds."""
        return self.read("recovered", "0").strip() == "1"

    @property
    def tries(self) -> int:
        try:
            return int(self.read("tries", "0").strip() or 0)
        except ValueError:
            return 0

    @property
    def reason(self) -> str:
        return self.read("reason").strip()

    @property
    def timing(self) -> tuple[float | None, float | None]:
        parts = self.read("timing").split()
        try:
            return (float(parts[0]), float(parts[1])) if len(parts) >= 2 else (None, None)
        except ValueError:
            return (None, None)

    def input_manifest(self) -> dict[str, list[Any]]:
        try:
            return json.loads((self.path / "inputs.json").read_text())
        except FileNotFoundError:
            return {}


@dataclass(frozen=True)
class WorkDir:
    """The work folder of one datum set (``/pach`` in a pod, a temporary folder locally)."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]):
        object.__setattr__(self, "root", Path(root).absolute())

    @property
    def busybox(self) -> Path:
        return self.root / "bin" / "busybox"

    @property
    def shim(self) -> Path:
        return self.root / "shim.sh"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def set_file(self) -> Path:
        return self.root / "set.json"

    def datum(self, n: int) -> DatumDir:
        return DatumDir(self.root / "datums" / str(n))

    def shim_argv(self) -> list[str]:
        """How to start the per-datum loop: ``WORK/bin/busybox sh WORK/shim.sh``."""
        return [str(self.busybox), "sh", str(self.shim)]

    def read_set(self) -> dict[str, Any]:
        """What stage recorded: pipeline, job, set, and the set's datums (in ``datums/<n>`` order)."""
        return json.loads(self.set_file.read_text())


def write_text_atomic(path: Path, text: str | bytes, mode: int | None = None) -> None:
    """Write then rename, so a reader (or a crash) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    data = text.encode() if isinstance(text, str) else text
    with open(tmp, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


