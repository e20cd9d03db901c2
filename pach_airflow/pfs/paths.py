"""Names and paths of the versioned store, checked the way Pachyderm checks them.

Owns: repo and branch name rules (``ancestry.ValidateName``: ``[a-zA-Z0-9_-]+``), file path cleaning
(``pfsfile.CleanPath``: a leading ``/``, no trailing ``/``, no ``.``/``..`` parts), the stricter rule for
paths that are written into commits (``storage.ValidateFilename``: printable ASCII, no glob characters),
commit ids and the ``repo@branch:/path`` addressing of pachctl.

Everything here is pure (no store access) so the CLI and the datum code can call it freely.
"""

from __future__ import annotations

import re

from pach_airflow.errors import InvalidName, InvalidPath

__all__ = [
    "GLOB_CHARS",
    "MAX_BRANCH_NAME",
    "MAX_REPO_NAME",
    "clean_path",
    "is_commit_id",
    "join_path",
    "parent_dir",
    "parse_ancestry",
    "parse_file_ref",
    "parse_ref",
    "validate_branch_name",
    "validate_output_path",
    "validate_path_for_write",
    "validate_repo_name",
]

# Pachyderm's docs say repo names are at most 63 characters; branch names share the same rule.
MAX_REPO_NAME = 63
MAX_BRANCH_NAME = 255
_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_COMMIT_ID = re.compile(r"[0-9a-f]{32}")
# src/internal/storage/paths.go: globbing characters are not allowed in stored file paths.
GLOB_CHARS = "*?[]{}!()@+^"
_GLOB_RE = re.compile(r"[*?\[\]{}!()@+^]")
_PRINTABLE = re.compile(r"[ -~]*")
# An already clean, storable path: "/" + parts of printable ASCII without "/" or glob characters, none
# of them "." or "..". Checked first because write_commit validates every path of a million-file commit.
_PART_CHAR = "".join(re.escape(chr(c)) for c in range(32, 127) if chr(c) not in "/" + GLOB_CHARS)
_CLEAN_STORABLE = re.compile(rf"(?:/(?!\.\.?(?:/|$))[{_PART_CHAR}]+)+")


def is_commit_id(s: str) -> bool:
    """True for a full commit id (32 lowercase hex characters)."""
    return len(s) == 32 and _COMMIT_ID.fullmatch(s) is not None


def _validate_name(kind: str, name: str, max_len: int) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{kind} name is empty: give a name of letters, digits, '_' or '-'")
    if not _NAME.fullmatch(name):
        raise InvalidName(
            f"{kind} name {name!r} invalid: only alphanumeric characters, underscores, and dashes are allowed"
        )
    if len(name) > max_len:
        raise InvalidName(f"{kind} name {name!r} invalid: {len(name)} characters long, at most {max_len} are allowed")
    return name


def validate_repo_name(name: str) -> str:
    """Return ``name`` if Pachyderm would accept it as a repo name, else raise :class:`InvalidName`."""
    return _validate_name("repo", name, MAX_REPO_NAME)


def validate_branch_name(name: str) -> str:
    """Return ``name`` if it is a valid branch name, else raise :class:`InvalidName`.

    Pachyderm refuses branch names that look like commit ids (they would be ambiguous in
    ``repo@<ref>``); so do we.
    """
    _validate_name("branch", name, MAX_BRANCH_NAME)
    if is_commit_id(name):
        raise InvalidName(f"branch name {name!r} looks like a commit id: pick a name that is not 32 hex digits")
    return name


def clean_path(path: str) -> str:
    """``pfsfile.CleanPath``: ``a//b/`` → ``/a/b``; ``""`` → ``/``.

    Refuses (with :class:`InvalidPath`) NUL and other control characters and ``..`` parts: a path
    must name something inside the repo.
    """
    if not isinstance(path, str):
        raise InvalidPath(f"path {path!r} is not a string")
    if "\x00" in path:
        raise InvalidPath(f"path {path!r} invalid: NUL characters are not allowed")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise InvalidPath(f"path {path!r} invalid: control characters are not allowed")
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidPath(f"path {path!r} invalid: '..' is not allowed, give a path inside the repo")
        parts.append(part)
    return "/" + "/".join(parts)


def validate_path_for_write(path: str) -> str:
    """Clean ``path`` and check it may be stored in a commit (``storage.ValidateFilename``).

    Pachyderm stores only printable ASCII paths without glob characters; the root is not a file.
    Returns the cleaned path.
    """
    if isinstance(path, str) and _CLEAN_STORABLE.fullmatch(path):
        return path
    if isinstance(path, str):
        for part in path.split("/"):
            if part in (".", ".."):
                raise InvalidPath(f"path {path!r} invalid: relative file paths ('.' or '..') are not allowed")
    cleaned = clean_path(path)
    if cleaned == "/":
        raise InvalidPath(f"path {path!r} names the repo root: give a file path such as /data/file.csv")
    if not _PRINTABLE.fullmatch(cleaned):
        raise InvalidPath(f"path {path!r} invalid: only printable ASCII characters are allowed")
    m = _GLOB_RE.search(cleaned)
    if m:
        raise InvalidPath(f"path {path!r} invalid: globbing character {m.group()!r} not allowed in a path")
    return cleaned


def validate_output_path(path: str) -> str:
    """The rule for files user code writes under ``/pfs/out`` (the same as any stored path)."""
    return validate_path_for_write(path)


def join_path(base: str, rel: str) -> str:
    """``join_path("/a", "b/c")`` → ``/a/b/c`` (cleaned)."""
    return clean_path(base.rstrip("/") + "/" + rel)


def parent_dir(path: str) -> str:
    """``/a/b/c`` → ``/a/b``; ``/a`` → ``/``."""
    head = path.rsplit("/", 1)[0]
    return head or "/"


def parse_ancestry(ref: str) -> tuple[str, int]:
    """``ancestry.Parse``: ``master^`` → (master, 1); ``master^3``/``master~3`` → 3; ``master^^`` → 2;
    ``master.2`` → (master, -2), the second commit counted from the start of the branch."""
    idx = -1
    for i, c in enumerate(ref):
        if c in "^~.":
            idx = i
            break
    if idx == -1:
        return ref, 0
    sep, base, rest = ref[idx], ref[:idx], ref[idx + 1:]
    try:
        n = int(rest)
    except ValueError:
        if rest and set(rest) != {sep}:
            raise InvalidName(f"invalid ancestry syntax {ref!r}, cannot mix {sep} and other characters") from None
        n = len(rest) + 1
        return base, (-n if sep == "." else n)
    return base, (-n if sep == "." else n)


def parse_ref(ref: str) -> tuple[str | None, str | None, int]:
    """Split a commit reference into ``(branch, commit_id, ancestry)``.

    ``master`` → (master, None, 0); ``<id>`` → (None, id, 0); ``master=<id>`` → (master, id, 0);
    ``master^2`` → (master, None, 2); ``<id>^`` → (None, id, 1).
    """
    if not ref:
        raise InvalidName("empty commit reference: give a branch or a commit id")
    base, anc = parse_ancestry(ref)
    if "=" in base:
        branch, _, cid = base.partition("=")
        validate_branch_name(branch)
        if not is_commit_id(cid):
            raise InvalidName(f"commit id {cid!r} in {ref!r} invalid: a commit id is 32 lowercase hex digits")
        return branch, cid, anc
    if is_commit_id(base):
        return None, base, anc
    return validate_branch_name(base), None, anc


def parse_file_ref(text: str, *, default_branch: str | None = "master", require_path: bool = False
                   ) -> tuple[str, str, str]:
    """``repo@branch:/path`` → ``(repo, ref, path)`` with the path cleaned.

    ``ref`` is the part after ``@`` (a branch, commit id, ``branch^N``, ``branch=commit``); without
    ``@`` it is ``default_branch`` (error when that is None). A missing ``:path`` gives ``/`` unless
    ``require_path``.
    """
    repo_part, at, rest = text.partition("@")
    if not at:
        repo_part, colon, path = text.partition(":")
        if default_branch is None:
            raise InvalidName(f"{text!r}: give a branch or commit, as in {repo_part}@master")
        ref = default_branch
    else:
        ref, colon, path = rest.partition(":")
    validate_repo_name(repo_part)
    if not ref:
        raise InvalidName(f"{text!r}: empty branch or commit after '@'")
    parse_ref(ref)  # validates
    if not colon and require_path:
        raise InvalidPath(f"{text!r}: give a file path, as in {repo_part}@{ref}:/path/to/file")
    return repo_part, ref, clean_path(path if colon else "/")
