"""How commands print: aligned tables for people, one JSON object per line for scripts."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO


def emit(rows: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]], fmt: str,
         out: TextIO | None = None) -> None:
    """Print ``rows``: ``fmt == "json"`` gives each whole row as one JSON line; ``"table"`` gives the
    ``columns`` (pairs of row key and header) aligned, headers upper-case as pachctl prints them."""
    out = out or sys.stdout
    if fmt == "json":
        import json

        for row in rows:
            out.write(json.dumps(row, default=str, sort_keys=False) + "\n")
        return
    table = [[h.upper() for _, h in columns]]
    for row in rows:
        table.append([_cell(row.get(k)) for k, _ in columns])
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for r in table:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value) or "-"
    return str(value)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{n}B"


def ago(ts: str | float | None) -> str:
    """'3 seconds ago' for an ISO timestamp or epoch seconds; '-' for None."""
    if ts is None:
        return "-"
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(ts, UTC) if isinstance(ts, (int, float)) else datetime.fromisoformat(ts)
    secs = int((datetime.now(UTC) - when).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size:
            k = secs // size
            return f"{k} {unit}{'s' if k != 1 else ''} ago"
    return f"{max(secs, 0)} second{'s' if secs != 1 else ''} ago"
