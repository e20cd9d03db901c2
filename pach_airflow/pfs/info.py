"""The read-only views the store hands out: FileInfo, CommitInfo, BranchInfo, RepoInfo.

Frozen dataclasses, JSON-able with ``.to_dict()`` (what ``-o json`` prints).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file or a directory of a commit.

    A dir's ``path`` ends with ``/``, its ``size`` is the subtree's total and its ``hash`` is
    sha256 over ``<path relative to the dir>\\0<file hash>\\n`` of every file below it in path order
    (so renaming or changing any file below changes it).
    """

    path: str
    type: str
    size: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "size": self.size, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: str
    repo: str
    branch: str | None
    parent: str | None
    origin: str
    description: str
    provenance: list[dict[str, str]]
    started: str
    finished: str | None
    error: str | None
    size_bytes: int | None
    file_count: int | None
    manifest: str | None = field(default=None, repr=False)  # hash of the manifest index (internal)
    ancestors: list[str] = field(default_factory=list, repr=False)  # nearest ancestor ids (internal)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("manifest", None)
        d.pop("ancestors", None)
        return d


@dataclass(frozen=True, slots=True)
class BranchInfo:
    repo: str
    name: str
    head: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RepoInfo:
    name: str
    description: str
    created: str
    size_bytes: int
    branches: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
