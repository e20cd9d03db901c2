"""pachctl's data commands: repos, branches, commits and files.

``create|list|inspect|delete repo``, ``create|list|delete branch``, ``start|finish|list|inspect|
subscribe commit``, ``put|get|list|diff|delete|copy|inspect file``, addressed as ``repo@branch:/path``.
Only the standard library is imported here; the store is imported inside each command.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pach_airflow.cli import OUTPUT_ARG, arg, command
from pach_airflow.cli.output import ago, emit, human_size

_STREAM_WIDTH_ROWS = 1000  # table widths come from the first rows; the rest stream without buffering


def _store():
    from pach_airflow.pfs import open_store

    return open_store()


def _ref(text: str, *, require_path: bool = False, default_branch: str | None = "master"):
    from pach_airflow.pfs.paths import parse_file_ref

    return parse_file_ref(text, require_path=require_path, default_branch=default_branch)


def _emit_stream(rows: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]], fmt: str) -> None:
    """Like :func:`emit`, but never holds more than the first rows: million-file listings stream."""
    out = sys.stdout
    if fmt == "json":
        emit(rows, columns, fmt)
        return
    it = iter(rows)
    head = list(itertools.islice(it, _STREAM_WIDTH_ROWS))
    table = [[h.upper() for _, h in columns]] + [[_cell(r.get(k)) for k, _ in columns] for r in head]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() + "\n"

    out.writelines(line(r) for r in table)
    for r in it:
        out.write(line([_cell(r.get(k)) for k, _ in columns]))


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


def _kv(obj: Mapping[str, Any], fmt: str, order: Sequence[tuple[str, str]]) -> None:
    """``inspect`` output: ``Key: value`` lines for people, the whole object as JSON for scripts."""
    if fmt == "json":
        emit([obj], [], "json")
        return
    for key, label in order:
        v = obj.get(key)
        if isinstance(v, list):
            v = ", ".join(f"{p['repo']}@{p.get('branch') or ''}={p['id']}" if isinstance(p, dict) else str(p)
                          for p in v) or "-"
        print(f"{label}: {_cell(v)}")


# ====================================================================== repos
@command("create", "repo", help="Create a new repo.",
         args=[arg("repo"), arg("-d", "--description", default=""),
               arg("--update", action="store_true", help="update the description if the repo exists")])
def create_repo(ns: argparse.Namespace) -> None:
    _store().create_repo(ns.repo, ns.description, update=ns.update)


@command("list", "repo", help="List repos.", args=[OUTPUT_ARG])
def list_repo(ns: argparse.Namespace) -> None:
    repos = _store().list_repos()
    rows = [{**r.to_dict(), "created_ago": ago(r.created), "size": human_size(r.size_bytes)} for r in repos]
    emit(rows if ns.output == "table" else [r.to_dict() for r in repos],
         [("name", "name"), ("created_ago", "created"), ("size", "size (master)"), ("description", "description")],
         ns.output)


@command("inspect", "repo", help="Show a repo.", args=[arg("repo"), OUTPUT_ARG])
def inspect_repo(ns: argparse.Namespace) -> None:
    r = _store().inspect_repo(ns.repo).to_dict()
    _kv(r if ns.output == "json" else {**r, "size_bytes": human_size(r["size_bytes"])}, ns.output,
        [("name", "Name"), ("description", "Description"), ("created", "Created"), ("size_bytes", "Size of HEAD on master"),
         ("branches", "Branches")])


@command("delete", "repo", help="Delete a repo and all its commits.",
         args=[arg("repo"), arg("-f", "--force", action="store_true")])
def delete_repo(ns: argparse.Namespace) -> None:
    _store().delete_repo(ns.repo, force=ns.force)


# ====================================================================== branches
@command("create", "branch", help="Create a branch (or move it with --head).",
         args=[arg("branch", metavar="REPO@BRANCH"),
               arg("--head", default=None, help="commit or branch the branch points at (default: a new empty commit)")])
def create_branch(ns: argparse.Namespace) -> None:
    repo, branch, _ = _ref(ns.branch, default_branch=None)
    from pach_airflow.pfs.paths import validate_branch_name

    validate_branch_name(branch)
    _store().create_branch(repo, branch, head=ns.head)


@command("list", "branch", help="List the branches of a repo.", args=[arg("repo"), OUTPUT_ARG])
def list_branch(ns: argparse.Namespace) -> None:
    emit((b.to_dict() for b in _store().list_branches(ns.repo)), [("name", "branch"), ("head", "head")], ns.output)


@command("delete", "branch", help="Delete a branch (its commits stay).", args=[arg("branch", metavar="REPO@BRANCH")])
def delete_branch(ns: argparse.Namespace) -> None:
    repo, branch, _ = _ref(ns.branch, default_branch=None)
    _store().delete_branch(repo, branch)


# ====================================================================== commits
_COMMIT_COLUMNS = [("repo", "repo"), ("branch", "branch"), ("id", "commit"), ("finished_ago", "finished"),
                   ("size", "size"), ("origin", "origin"), ("description", "description")]


def _commit_rows(commits: Iterable[Any], fmt: str) -> Iterator[dict[str, Any]]:
    for c in commits:
        d = c.to_dict()
        if fmt == "table":
            d["finished_ago"] = ago(c.finished) if c.finished else "-"
            d["size"] = human_size(c.size_bytes) if c.size_bytes is not None else "-"
        yield d


@command("start", "commit", help="Start a commit that later `put file`s add to, until `finish commit`.",
         args=[arg("branch", metavar="REPO@BRANCH"), arg("-m", "--message", "--description", dest="description",
                                                          default="")])
def start_commit(ns: argparse.Namespace) -> None:
    repo, branch, _ = _ref(ns.branch)
    print(_store().start_commit(repo, branch, description=ns.description))


@command("finish", "commit", help="Finish an open commit (REPO@BRANCH or REPO@COMMIT).",
         args=[arg("commit", metavar="REPO@BRANCH"), arg("-m", "--message", "--description", dest="description",
                                                          default=None)])
def finish_commit(ns: argparse.Namespace) -> None:
    repo, ref, _ = _ref(ns.commit)
    _store().finish_commit(repo, ref, description=ns.description)


@command("list", "commit", help="List commits, newest first (of every repo when none is given).",
         args=[arg("repo", metavar="REPO[@BRANCH]", nargs="?", default=None),
               arg("-n", "--number", type=int, default=None, help="at most this many commits (per repo)"),
               OUTPUT_ARG])
def list_commit(ns: argparse.Namespace) -> None:
    store = _store()
    if ns.repo is None:
        every = (c for r in store.list_repos() for c in store.list_commits(r.name, limit=ns.number))
        commits: Iterable[Any] = sorted(every, key=lambda c: c.id, reverse=True)
    else:
        repo, at, branch = ns.repo.partition("@")
        commits = store.list_commits(repo, branch if at else None, limit=ns.number)
    _emit_stream(_commit_rows(commits, ns.output), _COMMIT_COLUMNS, ns.output)


@command("inspect", "commit", help="Show a commit.", args=[arg("commit", metavar="REPO@COMMIT"), OUTPUT_ARG])
def inspect_commit(ns: argparse.Namespace) -> None:
    repo, ref, _ = _ref(ns.commit)
    c = _store().inspect_commit(repo, ref).to_dict()
    if ns.output == "table":
        c["size_bytes"] = human_size(c["size_bytes"]) if c["size_bytes"] is not None else None
    _kv(c, ns.output, [("id", "Commit"), ("repo", "Repo"), ("branch", "Original Branch"), ("parent", "Parent"),
                       ("origin", "Origin"), ("description", "Description"), ("started", "Started"),
                       ("finished", "Finished"), ("size_bytes", "Size"), ("file_count", "Files"),
                       ("provenance", "Provenance"), ("error", "Error")])


@command("subscribe", "commit", help="Print each finished commit of a branch as it lands (blocks).",
         args=[arg("branch", metavar="REPO@BRANCH"), arg("--from", dest="from_id", default=None,
                                                          help="start after this commit id"),
               arg("--new", action="store_true", help="only commits that land from now on"),
               arg("--timeout", type=float, default=None, help=argparse.SUPPRESS),
               arg("--poll", type=float, default=1.0, help=argparse.SUPPRESS), OUTPUT_ARG])
def subscribe_commit(ns: argparse.Namespace) -> None:
    repo, branch, _ = _ref(ns.branch)
    header = True
    for c in _store().subscribe_commits(repo, branch, from_id=ns.from_id, new=ns.new, poll=ns.poll,
                                        timeout=ns.timeout):
        row = next(_commit_rows([c], ns.output))
        if ns.output == "json":
            emit([row], [], "json")
        else:
            if header:
                print("REPO  BRANCH  COMMIT  FINISHED  SIZE  ORIGIN  DESCRIPTION")
                header = False
            print("  ".join(_cell(row.get(k)) for k, _ in _COMMIT_COLUMNS))
        sys.stdout.flush()


# ====================================================================== files
def _local_sources(ns: argparse.Namespace, target: str, explicit: bool = True) -> list[tuple[str, Any]]:
    """(store path, source) pairs for a put, every local path checked before anything is written.

    As pachctl: without a target path a file or directory keeps its base name (``-f dir -r`` → ``/dir/...``);
    with one, ``-r`` puts the directory's contents under it."""
    from pathlib import Path

    from pach_airflow.errors import InvalidPath, NotFound
    from pach_airflow.pfs.paths import join_path, validate_path_for_write

    sources: list[str] = list(ns.file or [])
    if ns.input_file:
        text = sys.stdin.read() if ns.input_file == "-" else _read_text(ns.input_file)
        sources += [line.strip() for line in text.splitlines() if line.strip()]
    if not sources:
        raise InvalidPath("put file: give -f LOCAL (or -f - for stdin, -i LIST for a list of local paths)")
    as_dir = target == "/" or target.endswith("/") or len(sources) > 1 or ns.recursive
    items: list[tuple[str, Any]] = []
    for src in sources:
        if src == "-":
            if as_dir:
                raise InvalidPath("put file -f -: give the target file path, as in repo@master:/path/file")
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
            items.append((validate_path_for_write(target), data))
            continue
        if src.startswith(("http://", "https://")):
            name = src.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            dest = join_path(target, name) if as_dir else target
            items.append((validate_path_for_write(dest), _Url(src)))
            continue
        p = Path(src)
        if not p.exists():
            raise NotFound(f"local file {src} not found")
        if p.is_dir():
            if not ns.recursive:
                raise InvalidPath(f"{src} is a directory: use put file -r")
            base = target if explicit else join_path(target, p.resolve().name)
            for dirpath, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    full = Path(dirpath) / name
                    rel = full.relative_to(p).as_posix()
                    items.append((validate_path_for_write(join_path(base, rel)), full))
        elif as_dir:
            items.append((validate_path_for_write(join_path(target, p.name)), p))
        else:
            items.append((validate_path_for_write(target), p))
    return items


class _Url:
    """A URL to put: fetched (streamed) when its turn comes, as ``pachctl put file -f URL`` does."""

    def __init__(self, url: str):
        self.url = url
        self._resp: Any = None

    def read(self, n: int = -1) -> bytes:
        if self._resp is None:
            import urllib.request

            from pach_airflow.errors import NotFound

            try:
                self._resp = urllib.request.urlopen(self.url, timeout=60)
            except OSError as exc:
                raise NotFound(f"cannot fetch {self.url}: {exc}") from None
        return self._resp.read(n)


def _read_text(path: str) -> str:
    from pach_airflow.errors import NotFound

    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        raise NotFound(f"list file {path} (-i) not found") from None


class _Progress:
    """A rich progress bar on stderr, only for large puts on a terminal."""

    def __init__(self, total: int, files: int):
        self.bar = None
        if sys.stderr.isatty() and (total >= 64 << 20 or files >= 1000):
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), console=Console(file=sys.stderr), transient=True)
            self.task = self.bar.add_task(f"put {files} files", total=total)
            self.bar.start()

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@command("put", "file", help="Put local files into a repo (one commit per put unless a commit is open).",
         args=[arg("target", metavar="REPO@BRANCH[:/PATH]"),
               arg("-f", "--file", action="append", help="local file or directory, http(s) URL, or '-' for stdin (repeatable)"),
               arg("-r", "--recursive", action="store_true", help="put a directory's contents under PATH"),
               arg("-a", "--append", action="store_true", help="append to existing files instead of overwriting"),
               arg("-i", "--input-file", default=None, help="a file listing local paths, one a line ('-': stdin)"),
               arg("-m", "--message", dest="description", default=None, help=argparse.SUPPRESS)])
def put_file(ns: argparse.Namespace) -> None:
    repo, ref, path = _ref(ns.target)
    store = _store()
    raw_path = ns.target.partition(":")[2]
    target = path + "/" if raw_path.endswith("/") and path != "/" else path
    items = _local_sources(ns, target, explicit=":" in ns.target)
    store._target(repo, ref)  # repo, branch, open commit: checked before any upload
    total = sum(os.path.getsize(s) for _, s in items if isinstance(s, os.PathLike))
    progress = _Progress(total, len(items))
    try:
        store.put_files(repo, ref, items, append=ns.append, progress=progress)
    finally:
        progress.close()


def _write_out(data_iter: Iterable[bytes]) -> None:
    out = getattr(sys.stdout, "buffer", None)
    for chunk in data_iter:
        if out is not None:
            out.write(chunk)
        else:
            sys.stdout.write(chunk.decode(errors="replace"))
    sys.stdout.flush()


@command("get", "file", help="Print a file, or write it (-o) / a directory (-r -o) to local disk.",
         args=[arg("file", metavar="REPO@REF:/PATH"), arg("-o", "--output", dest="dest", default=None,
                                                           help="local path to write to"),
               arg("-r", "--recursive", action="store_true", help="get a directory")])
def get_file(ns: argparse.Namespace) -> None:
    from pach_airflow.errors import InvalidPath

    repo, ref, path = _ref(ns.file, require_path=True)
    store = _store()
    fi = store.inspect_file(repo, ref, path)
    if fi.type == "dir":
        if not ns.recursive or not ns.dest:
            raise InvalidPath(f"{ns.file} is a directory: use get file -r -o LOCAL_DIR")
        store.get_files(repo, ref, path, ns.dest)
        return
    if ns.dest:
        store.get_files(repo, ref, path, ns.dest)
        return
    with store.open_blob(fi.hash) as f:
        _write_out(iter(lambda: f.read(1 << 20), b""))


@command("list", "file", help="List the files of a directory (REPO@REF[:/DIR]).",
         args=[arg("dir", metavar="REPO@REF[:/PATH]"), OUTPUT_ARG])
def list_file(ns: argparse.Namespace) -> None:
    import json

    repo, ref, path = _ref(ns.dir)
    rows = _store().iter_file_tuples(repo, ref, path)
    out = sys.stdout
    # Million-file listings: rows are formatted straight from tuples, in blocks, never all held.
    if ns.output == "json":
        dumps = json.dumps
        for block in iter(lambda: list(itertools.islice(rows, 4096)), []):
            # Stored paths are printable ASCII; only '"' and '\\' need json.dumps' escaping.
            out.write("".join(
                f'{{"path": {dumps(p) if chr(34) in p or chr(92) in p else chr(34) + p + chr(34)}, '
                f'"type": "{t}", "size": {s}, "hash": "{h}"}}\n' for p, t, s, h in block))
        return
    head = list(itertools.islice(rows, _STREAM_WIDTH_ROWS))
    w = max([len("NAME")] + [len(r[0]) for r in head])
    sizes: dict[int, str] = {}

    def size(n: int) -> str:
        got = sizes.get(n)
        if got is None:
            got = sizes[n] = human_size(n)
        return got

    out.write(f"{'NAME':<{w}}  TYPE  SIZE\n")
    for block in itertools.chain([head], iter(lambda: list(itertools.islice(rows, 4096)), [])):
        out.write("".join(f"{p:<{w}}  {t:<4}  {size(s)}\n" for p, t, s, _ in block))


@command("inspect", "file", help="Show a file or directory.", args=[arg("file", metavar="REPO@REF:/PATH"), OUTPUT_ARG])
def inspect_file(ns: argparse.Namespace) -> None:
    repo, ref, path = _ref(ns.file, require_path=True)
    f = _store().inspect_file(repo, ref, path).to_dict()
    if ns.output == "table":
        f["size"] = human_size(f["size"])
    _kv(f, ns.output, [("path", "Path"), ("type", "Type"), ("size", "Size"), ("hash", "Hash")])


@command("diff", "file", help="Show the files that differ between two commits (default: the parent).",
         args=[arg("new", metavar="REPO@REF[:/PATH]"), arg("old", nargs="?", default=None, metavar="REPO@REF[:/PATH]"),
               OUTPUT_ARG])
def diff_file(ns: argparse.Namespace) -> None:
    from pach_airflow.errors import InvalidName

    repo, ref, path = _ref(ns.new)
    old_ref = None
    if ns.old:
        old_repo, old_ref, _ = _ref(ns.old)
        if old_repo != repo:
            raise InvalidName(f"diff file compares commits of one repo: {repo} vs {old_repo}")

    def rows() -> Iterator[dict[str, Any]]:
        for new, old in _store().diff_file(repo, ref, old_ref, prefix=path):
            op = "added" if old is None else "deleted" if new is None else "modified"
            f = new or old
            if ns.output == "json":
                yield {"op": op, "path": f.path, "new": new and new.to_dict(), "old": old and old.to_dict()}
            else:
                yield {"op": op, "path": f.path, "size_h": human_size(f.size)}

    _emit_stream(rows(), [("op", "op"), ("path", "name"), ("size_h", "size")], ns.output)


@command("delete", "file", help="Delete a file (or with -r a directory).",
         args=[arg("file", metavar="REPO@BRANCH:/PATH"), arg("-r", "--recursive", action="store_true")])
def delete_file(ns: argparse.Namespace) -> None:
    from pach_airflow.errors import InvalidPath

    repo, ref, path = _ref(ns.file, require_path=True)
    store = _store()
    branch, open_id = store._target(repo, ref)
    if open_id is None:
        fi = store.inspect_file(repo, branch, path)
        if fi.type == "dir" and not ns.recursive:
            raise InvalidPath(f"{ns.file} is a directory: use delete file -r")
    store.delete_file(repo, ref, path)


@command("copy", "file", help="Copy a file or directory between commits/repos (no bytes are copied).",
         args=[arg("src", metavar="SRC_REPO@REF:/PATH"), arg("dst", metavar="DST_REPO@BRANCH:/PATH")])
def copy_file(ns: argparse.Namespace) -> None:
    src_repo, src_ref, src_path = _ref(ns.src, require_path=True)
    dst_repo, dst_ref, dst_path = _ref(ns.dst, require_path=True)
    _store().copy_file(src_repo, src_ref, src_path, dst_repo, dst_ref, dst_path)
