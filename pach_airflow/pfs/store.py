"""The versioned store: repos, branches, commits, files and records over one object-store backend.

Owns the PFS logic, written once for every backend (local folder, S3). Key layout::

    blobs/<sha[:2]>/<sha>                          file contents, content-addressed, immutable
    manifests/<sha[:2]>/<sha>                      manifest chunks and indexes (see manifest.py)
    repos/<repo>/repo.json                         {"name", "description", "created"}
    repos/<repo>/branches/<branch>.json            {"name", "head", "created"}: moved by compare-and-swap
    repos/<repo>/commits/<id>.json                 commit metadata (CommitInfo + manifest index hash)
    repos/<repo>/open-branches/<branch>.json       {"id"}: the open commit of a branch (start commit)
    repos/<repo>/open-commits/<id>/commit.json     the open commit's metadata
    repos/<repo>/open-commits/<id>/ops/<seq>.json  its pending puts/deletes, one batch per call
    records/<key>.json | records/<key>.bin         records (JSON) and large byte records

How the guarantees are kept:
- a commit becomes visible only when its branch head moves to it (conditional write); everything it
  needs (blobs, manifest, metadata) is written before, so readers never see a partial commit and a
  writer killed at any point leaves nothing visible (at worst unreferenced objects);
- a writer that loses the head race re-reads the head, re-applies its changes onto it, and retries
  with jittered backoff, so concurrent commits on one branch all land, in some order;
- listings of commits follow branch heads and parents, so they too see only landed commits.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, BinaryIO, Self

from pach_airflow.errors import AlreadyExists, Conflict, InvalidName, InvalidPath, NotFound, StoreError
from pach_airflow.pfs import paths as P
from pach_airflow.pfs.backend import Backend, KeyMissing, open_backend
from pach_airflow.pfs.info import BranchInfo, CommitInfo, FileInfo, RepoInfo
from pach_airflow.pfs.manifest import Entry, Manifests, fold_dir, is_deleted

__all__ = ["DEFAULT_STORE_URL", "OpenCommit", "Store", "open_store", "store_url"]

DEFAULT_STORE_URL = "file://~/.pach-airflow/store"
CAS_ATTEMPTS = 200
ANCESTORS = 32  # ancestor ids each commit records, for parallel history reads
SMALL_BLOB = 8 << 20  # stream inputs up to this size are hashed in memory; bigger ones are spooled
SMALL_FILE = 256 << 10  # local files up to this size are read whole
IO_THREADS = 16

_RECORD_PART = re.compile(r"[A-Za-z0-9_.=@:+,-]+")


def store_url(url: str | None = None) -> str:
    """The store URL in effect: ``url``, else ``$PACH_AIRFLOW_STORE``, else Airflow's
    ``[pach_airflow] store`` (only read from the environment here), else the default."""
    return (url or os.environ.get("PACH_AIRFLOW_STORE") or os.environ.get("AIRFLOW__PACH_AIRFLOW__STORE")
            or DEFAULT_STORE_URL)


def open_store(url: str | None = None, *, client: object | None = None) -> Store:
    """Open the store named by ``url`` (see :func:`store_url`); ``client``: a boto3 S3 client for
    ``s3://`` URLs (e.g. built from an Airflow connection)."""
    resolved = store_url(url)
    return Store(open_backend(resolved, client=client), url=resolved)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


_id_lock = threading.Lock()
_last_ns = 0


def new_commit_id() -> str:
    """32 lowercase hex: 16 of nanoseconds since the epoch (strictly increasing in this process)
    and 16 random, so ids sort by creation time."""
    global _last_ns
    with _id_lock:
        t = max(time.time_ns(), _last_ns + 1)
        _last_ns = t
    return f"{t:016x}{secrets.token_hex(8)}"


def _provenance(prov: Iterable[Any]) -> list[dict[str, str]]:
    out = []
    for p in prov:
        if isinstance(p, CommitInfo):
            out.append({"repo": p.repo, "branch": p.branch or "", "id": p.id})
        elif isinstance(p, dict):
            out.append({"repo": str(p["repo"]), "branch": str(p.get("branch") or ""), "id": str(p["id"])})
        else:
            repo, branch, cid = p
            out.append({"repo": str(repo), "branch": str(branch or ""), "id": str(cid)})
    return out


def _commit_from_doc(d: dict[str, Any]) -> CommitInfo:
    return CommitInfo(
        id=d["id"], repo=d["repo"], branch=d.get("branch"), parent=d.get("parent"), origin=d.get("origin", "USER"),
        description=d.get("description", ""), provenance=list(d.get("provenance") or []),
        started=d.get("started", ""), finished=d.get("finished"), error=d.get("error"),
        size_bytes=d.get("size_bytes"), file_count=d.get("file_count"), manifest=d.get("manifest"),
        ancestors=list(d.get("ancestors") or []),
    )


class _Ops:
    """Pending changes of a commit, in call order: ("put", path, hash, size), ("append", ...),
    ("delete", path). Materialised against the parent manifest when the commit lands."""

    def __init__(self) -> None:
        self.ops: list[tuple] = []
        self.lock = threading.Lock()

    def add(self, *op: Any) -> None:
        with self.lock:
            self.ops.append(op)

    def extend(self, ops: Iterable[tuple]) -> None:
        with self.lock:
            self.ops.extend(ops)

    @property
    def has_append(self) -> bool:
        return any(op[0] == "append" for op in self.ops)


class Store:
    """One versioned store. Thread-safe; cheap to open (nothing is read until asked)."""

    def __init__(self, backend: Backend, *, url: str | None = None):
        self.backend = backend
        self.url = url or backend.url
        self._manifests: Manifests | None = None
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pool_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.bytes_uploaded = 0  # file bytes sent to the backend by put_blob (dedup skips count 0)
        self.blobs_skipped = 0
        self._seen: set[str] = set()  # blobs known to be stored (blobs are never deleted)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def manifests(self) -> Manifests:
        if self._manifests is None:
            self._manifests = Manifests(self.backend, executor=lambda: self._pool("read"))
        return self._manifests

    def _pool(self, name: str) -> ThreadPoolExecutor:
        # Separate pools for blob uploads and manifest chunk writes so one never waits on the other.
        with self._pool_lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = ThreadPoolExecutor(IO_THREADS, thread_name_prefix=f"pfs-{name}")
            return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True)
        self._pools.clear()

    new_commit_id = staticmethod(new_commit_id)

    # ================================================================ repos
    def _repo_key(self, repo: str) -> str:
        return f"repos/{repo}/repo.json"

    def _require_repo(self, repo: str) -> dict[str, Any]:
        P.validate_repo_name(repo)
        try:
            return json.loads(self.backend.get(self._repo_key(repo)))
        except KeyMissing:
            raise NotFound(f"repo {repo} not found: create it with `pach-airflow create repo {repo}`") from None

    def create_repo(self, repo: str, description: str = "", *, update: bool = False) -> RepoInfo:
        P.validate_repo_name(repo)
        doc = {"name": repo, "description": description, "created": _now()}
        if not self.backend.put_if_absent(self._repo_key(repo), _dumps(doc)):
            if not update:
                raise AlreadyExists(f"repo {repo} already exists (use update=True / --update to change "
                                    "its description)")
            old = self._require_repo(repo)
            old["description"] = description
            self.backend.put(self._repo_key(repo), _dumps(old))
        return self.inspect_repo(repo)

    def inspect_repo(self, repo: str) -> RepoInfo:
        doc = self._require_repo(repo)
        branches = [b.name for b in self.list_branches(repo)]
        size = 0
        if "master" in branches:
            try:
                size = self.inspect_commit(repo, "master").size_bytes or 0
            except NotFound:
                size = 0
        return RepoInfo(name=repo, description=doc.get("description", ""), created=doc.get("created", ""),
                        size_bytes=size, branches=branches)

    def list_repos(self) -> list[RepoInfo]:
        out = []
        for prefix in self.backend.list("repos/", delimiter="/"):
            name = prefix[len("repos/"):].rstrip("/")
            try:
                out.append(self.inspect_repo(name))
            except (NotFound, InvalidName):
                continue  # deleted meanwhile, or a half-deleted leftover
        out.sort(key=lambda r: r.created, reverse=True)  # pachctl lists newest first
        return out

    def delete_repo(self, repo: str, *, force: bool = False) -> None:
        self._require_repo(repo)
        # The repo disappears for readers the moment repo.json goes; the rest is cleanup.
        self.backend.delete(self._repo_key(repo))
        self.backend.delete_many(list(self.backend.list(f"repos/{repo}/")))

    # ================================================================ branches
    def _branch_key(self, repo: str, branch: str) -> str:
        return f"repos/{repo}/branches/{branch}.json"

    def _read_branch(self, repo: str, branch: str) -> tuple[dict[str, Any], str] | None:
        try:
            data, etag = self.backend.get_with_etag(self._branch_key(repo, branch))
        except KeyMissing:
            return None
        return json.loads(data), etag

    def _branch_or_raise(self, repo: str, branch: str) -> dict[str, Any]:
        got = self._read_branch(repo, branch)
        if got is None:
            raise NotFound(f"branch {branch} not found in repo {repo}: see `pach-airflow list branch {repo}`")
        return got[0]

    def create_branch(self, repo: str, branch: str, *, head: str | None = None) -> BranchInfo:
        """Create ``branch`` at ``head`` (a ref in this repo), or with a new empty commit as its head.
        On an existing branch, ``head`` moves it there (as ``pachctl create branch --head`` does)."""
        self._require_repo(repo)
        P.validate_branch_name(branch)
        target = None
        if head:
            c = self.inspect_commit(repo, head)
            if c.finished is None:
                raise Conflict(f"commit {c.id} of repo {repo} is still open: finish it before pointing a branch at it")
            target = c.id
        if target is None:
            if self._read_branch(repo, branch) is not None:
                raise AlreadyExists(f"branch {branch} already exists in repo {repo} (give --head to move it)")
            try:
                self._land(repo, branch, new_commit_id(), lambda parent: self.manifests.write_index([]),
                           {"origin": "AUTO", "description": "", "provenance": [], "started": _now(),
                            "error": None}, create_only=True)
            except Conflict:
                raise AlreadyExists(f"branch {branch} already exists in repo {repo}") from None
            return self.inspect_branch(repo, branch)
        for attempt in range(CAS_ATTEMPTS):
            got = self._read_branch(repo, branch)
            doc = {"name": branch, "head": target, "created": got[0].get("created") if got else _now()}
            ok = (self.backend.put_if_match(self._branch_key(repo, branch), _dumps(doc), got[1]) if got
                  else self.backend.put_if_absent(self._branch_key(repo, branch), _dumps(doc)))
            if ok:
                return BranchInfo(repo, branch, target)
            _backoff(attempt)
        raise Conflict(f"could not move branch {branch} of repo {repo}: too many concurrent updates")

    def inspect_branch(self, repo: str, branch: str) -> BranchInfo:
        """One read when the branch exists (cheap enough to poll: the commit watchers do)."""
        P.validate_repo_name(repo)
        P.validate_branch_name(branch)
        got = self._read_branch(repo, branch)
        if got is None:
            self._require_repo(repo)  # the better message when the repo is what is missing
            return BranchInfo(repo, branch, self._branch_or_raise(repo, branch).get("head"))
        return BranchInfo(repo, branch, got[0].get("head"))

    def list_branches(self, repo: str) -> list[BranchInfo]:
        P.validate_repo_name(repo)
        out = []
        for key in self.backend.list(f"repos/{repo}/branches/"):
            name = key.rsplit("/", 1)[1]
            if not name.endswith(".json"):
                continue
            got = self._read_branch(repo, name[:-5])
            if got is not None:
                out.append(BranchInfo(repo, name[:-5], got[0].get("head")))
        return out

    def delete_branch(self, repo: str, branch: str) -> None:
        self._require_repo(repo)
        P.validate_branch_name(branch)
        self._branch_or_raise(repo, branch)
        self.backend.delete(self._branch_key(repo, branch))

    # ================================================================ commits: reading
    def _commit_key(self, repo: str, cid: str) -> str:
        return f"repos/{repo}/commits/{cid}.json"

    def _read_commit(self, repo: str, cid: str) -> CommitInfo:
        try:
            return _commit_from_doc(json.loads(self.backend.get(self._commit_key(repo, cid))))
        except KeyMissing:
            pass
        try:
            meta = json.loads(self.backend.get(self._open_meta_key(repo, cid)))
            return _commit_from_doc({**meta, "finished": None, "size_bytes": None, "file_count": None})
        except KeyMissing:
            pass
        # Landed a moment ago (its metadata is still only in the branch head), or its writer died
        # right after landing it: then the branch holds it, and this read stores it for good.
        for key in self.backend.list(f"repos/{repo}/branches/"):
            if key.endswith(".json"):
                got = self._read_branch(repo, key.rsplit("/", 1)[1][:-5])
                if got is not None and got[0].get("head") == cid and got[0].get("head_doc"):
                    return self._head_commit(repo, got[0])
        raise NotFound(f"commit {cid} not found in repo {repo}")

    def inspect_commit(self, repo: str, ref: str) -> CommitInfo:
        """``ref``: a branch (its head), a commit id, ``branch=id``, with ancestry ``^N``/``~N``/``.N``."""
        self._require_repo(repo)
        branch, cid, anc = P.parse_ref(ref)
        if cid is None:
            bdoc = self._branch_or_raise(repo, branch)
            if bdoc.get("head") is None:
                raise NotFound(f"branch {branch} of repo {repo} has no commits")
            doc = bdoc.get("head_doc")
            commit = (_commit_from_doc(doc) if doc and doc.get("id") == bdoc["head"]
                      else self._read_commit(repo, bdoc["head"]))
        else:
            commit = self._read_commit(repo, cid)
        if anc > 0:
            for _ in range(anc):
                if commit.parent is None:
                    raise NotFound(f"{repo}@{ref}: the history has fewer than {anc} ancestors")
                commit = self._read_commit(repo, commit.parent)
        elif anc < 0:
            history = list(self._history(repo, commit.id))
            if -anc > len(history):
                raise NotFound(f"{repo}@{ref}: the history has only {len(history)} commits")
            commit = history[len(history) + anc]
        return commit

    def _history(self, repo: str, cid: str | None) -> Iterator[CommitInfo]:
        """The commit ``cid`` and its ancestors, newest first. Each commit names its nearest
        :data:`ANCESTORS` ancestors, so after the first steps the next ones are fetched in parallel
        (on S3, one round trip per batch instead of one per commit)."""
        ahead: dict[str, CommitInfo] = {}
        step = 0
        while cid is not None:
            c = ahead.pop(cid, None) or self._read_commit(repo, cid)
            yield c
            step += 1
            if step >= 2 and c.parent is not None and c.parent not in ahead and len(c.ancestors) > 1:
                ids = c.ancestors[:ANCESTORS]
                for got in self._pool("read").map(lambda i: self._read_commit(repo, i), ids):
                    ahead[got.id] = got
            cid = c.parent

    def list_commits(self, repo: str, branch: str | None = None, *, limit: int | None = None
                     ) -> Iterator[CommitInfo]:
        """Commits newest first: the branch's open commit (if any) then its history; without a branch,
        every commit reachable from any branch."""
        self._require_repo(repo)
        if branch is not None:
            b, cid, anc = P.parse_ref(branch)
            if cid is None and anc == 0:
                open_id = self._open_id(repo, b)
                got = self._read_branch(repo, b)
                if got is None and open_id is None:
                    self._branch_or_raise(repo, b)
                gen = self._history(repo, got[0].get("head") if got else None)
                if open_id:
                    gen = _chain([self._read_commit(repo, open_id)], gen)
            else:
                gen = self._history(repo, self.inspect_commit(repo, branch).id)
            for n, c in enumerate(gen):
                if limit is not None and n >= limit:
                    return
                yield c
            return
        seen: dict[str, CommitInfo] = {}
        for bi in self.list_branches(repo):
            for c in self._history(repo, bi.head):
                if c.id in seen:
                    break
                seen[c.id] = c
            open_id = self._open_id(repo, bi.name)
            if open_id and open_id not in seen:
                seen[open_id] = self._read_commit(repo, open_id)
        for n, cid in enumerate(sorted(seen, reverse=True)):
            if limit is not None and n >= limit:
                return
            yield seen[cid]

    def subscribe_commits(self, repo: str, branch: str, *, from_id: str | None = None, new: bool = False,
                          poll: float = 1.0, timeout: float | None = None) -> Iterator[CommitInfo]:
        """Finished commits of ``branch``, oldest first, then each new one as it lands (blocks between).

        ``from_id``: start after that commit; ``new``: only commits that land from now on;
        ``timeout``: stop after that many seconds without a new commit (None: never)."""
        self._require_repo(repo)
        P.validate_branch_name(branch)
        got = self._read_branch(repo, branch)
        head = got[0].get("head") if got else None
        if new:
            last = head
        else:
            last = from_id
            if from_id is not None:
                self._read_commit(repo, from_id)  # NotFound for a bad id
        idle_since = time.monotonic()
        while True:
            got = self._read_branch(repo, branch)
            head = got[0].get("head") if got else None
            if head != last and head is not None:
                fresh = []
                for c in self._history(repo, head):
                    if c.id == last:
                        break
                    fresh.append(c)
                for c in reversed(fresh):
                    yield c
                last = head
                idle_since = time.monotonic()
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            time.sleep(poll)

    # ================================================================ commits: writing
    def _land(self, repo: str, branch: str, cid: str, manifest_for: Callable[[CommitInfo | None], str],
              meta: dict[str, Any], *, create_only: bool = False) -> CommitInfo:
        """Write commit ``cid`` on top of the branch head and move the head to it by compare-and-swap,
        recomputing the manifest against the new head when another writer got there first.

        Landing an id that already landed on this branch returns that commit (a retried job finish
        is idempotent); an id used on another branch is refused (commits are immutable).

        The commit's metadata travels inside the branch document (``head_doc``), so the
        compare-and-swap publishes commit and head in one write; ``commits/<id>.json`` is written
        right after, and by the next writer or reader if this process dies in between. A writer that
        loses or dies before the swap leaves no commit metadata at all."""
        bkey = self._branch_key(repo, branch)
        try:
            existing: dict[str, Any] | None = json.loads(self.backend.get(self._commit_key(repo, cid)))
        except KeyMissing:
            got = self._read_branch(repo, branch)
            existing = got[0].get("head_doc") if got and got[0].get("head") == cid else None
        if existing is not None:
            if existing.get("branch") != branch:
                raise Conflict(f"commit id {cid} is used already in repo {repo} (branch {existing.get('branch')}): "
                               "commit ids are unique; use a new one (store.new_commit_id())")
            return _commit_from_doc(existing)
        for attempt in range(CAS_ATTEMPTS):
            got = self._read_branch(repo, branch)
            if got is not None and create_only:
                raise Conflict(f"branch {branch} of repo {repo} exists")
            parent_id = got[0].get("head") if got else None
            parent = self._head_commit(repo, got[0]) if got and parent_id else None
            index = manifest_for(parent)
            count, size = self.manifests.stats(index)
            ancestors = ([parent_id] + parent.ancestors[:ANCESTORS - 1]) if parent is not None else []
            doc = {"id": cid, "repo": repo, "branch": branch, "parent": parent_id, **meta,
                   "finished": _now(), "size_bytes": size, "file_count": count, "manifest": index,
                   "ancestors": ancestors}
            bdoc = {"name": branch, "head": cid, "created": got[0].get("created") if got else _now(),
                    "head_doc": doc}
            ok = (self.backend.put_if_match(bkey, _dumps(bdoc), got[1]) if got
                  else self.backend.put_if_absent(bkey, _dumps(bdoc)))
            if ok:
                self.backend.put(self._commit_key(repo, cid), _dumps(doc))
                return _commit_from_doc(doc)
            _backoff(attempt)
        raise Conflict(f"commit {cid} could not land on {repo}@{branch}: the branch head moved "
                       f"{CAS_ATTEMPTS} times in a row; try again")

    def _head_commit(self, repo: str, bdoc: dict[str, Any]) -> CommitInfo:
        """The head commit of a branch document, making sure its ``commits/<id>.json`` exists (the
        writer that landed it may have died right after the swap) before the head moves past it."""
        doc = bdoc.get("head_doc")
        if doc is None or doc.get("id") != bdoc["head"]:
            return self._read_commit(repo, bdoc["head"])
        key = self._commit_key(repo, doc["id"])
        if not self.backend.exists(key):
            self.backend.put(key, _dumps(doc))
        return _commit_from_doc(doc)

    def _parent_index(self, parent: CommitInfo | None) -> str:
        if parent is None or parent.manifest is None:
            return self.manifests.empty_index
        return parent.manifest

    def _materialise(self, ops: Sequence[tuple], parent_index: str) -> tuple[dict[str, tuple[str, int]], set[str]]:
        """Turn ordered ops into (puts, deletes) relative to the parent manifest."""
        puts: dict[str, tuple[str, int]] = {}
        deletes: set[str] = set()
        for op in ops:
            kind, path = op[0], op[1]
            if kind == "put":
                puts[path] = (op[2], op[3])
            elif kind == "delete":
                if path == "/":
                    puts.clear()
                else:
                    below = path + "/"
                    for k in [k for k in puts if k == path or k.startswith(below)]:
                        del puts[k]
                deletes.add(path)
            elif kind == "append":
                cur = puts.get(path)
                if cur is None and not is_deleted(path, deletes):
                    e = self.manifests.lookup(parent_index, path)
                    cur = (e[1], e[2]) if e else None
                puts[path] = self._concat(cur, (op[2], op[3])) if cur else (op[2], op[3])
            else:  # pragma: no cover - ops are written by this module only
                raise StoreError(f"unknown commit operation {kind!r}")
        return puts, deletes

    def _concat(self, a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
        if a[1] == 0:
            return b
        if b[1] == 0:
            return a
        with tempfile.TemporaryFile() as tmp:
            for h in (a[0], b[0]):
                with self.open_blob(h) as f:
                    while chunk := f.read(1 << 20):
                        tmp.write(chunk)
            tmp.seek(0)
            return self.put_blob(tmp)

    def _check_conflicts(self, index: str, puts: dict[str, tuple[str, int]]) -> None:
        """A path cannot be both a file and a directory (Pachyderm refuses such a commit)."""
        dirs: set[str] = set()
        for p in puts:
            i = p.find("/", 1)
            while i != -1:
                dirs.add(p[:i])
                i = p.find("/", i + 1)
        for d in dirs:
            if d in puts or self.manifests.lookup(index, d) is not None:
                raise InvalidPath(f"cannot commit {d}/...: {d} is a file; delete it first or pick another path")
        for p in puts:
            if p in dirs or next(self._below(index, p), None) is not None:
                raise InvalidPath(f"cannot put file {p}: it is a directory; delete it first or pick another path")

    def _below(self, index: str, path: str) -> Iterator[Entry]:
        for e in self.manifests.iter_prefix(index, path):
            if e[0] != path:
                yield e

    def _finish_ops(self, repo: str, branch: str, cid: str, ops: _Ops, meta: dict[str, Any]) -> CommitInfo:
        static: tuple[dict, set] | None = None
        if not ops.has_append:
            static = self._materialise(ops.ops, self.manifests.empty_index)

        def manifest_for(parent: CommitInfo | None) -> str:
            base = self._parent_index(parent)
            puts, deletes = static if static is not None else self._materialise(ops.ops, base)
            index = self.manifests.merge(base, puts, deletes, self._pool("meta"))
            if puts:
                self._check_conflicts(index, puts)
            return index

        return self._land(repo, branch, cid, manifest_for, meta)

    def open_commit(self, repo: str, branch: str, *, origin: str = "USER", description: str = "",
                    provenance: Iterable[Any] = (), commit_id: str | None = None) -> OpenCommit:
        """A commit being written in this process; ``with`` it to finish on success."""
        self._require_repo(repo)
        P.validate_branch_name(branch)
        if origin not in ("USER", "AUTO"):
            raise StoreError(f"origin {origin!r} invalid: use USER or AUTO")
        if commit_id is not None and not P.is_commit_id(commit_id):
            raise InvalidName(f"commit id {commit_id!r} invalid: 32 lowercase hex digits (see new_commit_id())")
        return OpenCommit(self, repo, branch, commit_id or new_commit_id(),
                          {"origin": origin, "description": description, "provenance": _provenance(provenance),
                           "started": _now(), "error": None})

    def write_commit(self, repo: str, branch: str, files: Iterable[FileInfo | Entry], *,
                     commit_id: str | None = None, origin: str = "AUTO", provenance: Iterable[Any] = (),
                     error: str | None = None, description: str = "") -> CommitInfo:
        """A commit whose whole content is ``files`` (sorted by path; blobs already stored)."""
        self._require_repo(repo)
        P.validate_branch_name(branch)
        if commit_id is not None and not P.is_commit_id(commit_id):
            raise InvalidName(f"commit id {commit_id!r} invalid: 32 lowercase hex digits")
        started = _now()

        def entries() -> Iterator[Entry]:
            for f in files:
                if isinstance(f, FileInfo):
                    if f.type != "file":
                        raise InvalidPath(f"write_commit: {f.path} is a {f.type}; give files only")
                    yield P.validate_path_for_write(f.path), f.hash, f.size
                else:
                    yield P.validate_path_for_write(f[0]), f[1], int(f[2])

        index = self.manifests.build(entries(), self._pool("meta"))
        meta = {"origin": origin, "description": description, "provenance": _provenance(provenance),
                "started": started, "error": error}
        return self._land(repo, branch, commit_id or new_commit_id(), lambda parent: index, meta)

    # -- commits that survive the process (pachctl start/finish commit) --------------------------
    def _open_marker_key(self, repo: str, branch: str) -> str:
        return f"repos/{repo}/open-branches/{branch}.json"

    def _open_meta_key(self, repo: str, cid: str) -> str:
        return f"repos/{repo}/open-commits/{cid}/commit.json"

    def _open_id(self, repo: str, branch: str) -> str | None:
        try:
            return json.loads(self.backend.get(self._open_marker_key(repo, branch)))["id"]
        except KeyMissing:
            return None

    def start_commit(self, repo: str, branch: str, *, origin: str = "USER", description: str = "",
                     provenance: Iterable[Any] = (), commit_id: str | None = None) -> str:
        """Open a commit on ``branch`` that later puts (any process) add to until :meth:`finish_commit`."""
        c = self.open_commit(repo, branch, origin=origin, description=description, provenance=provenance,
                             commit_id=commit_id)
        meta = {"id": c.commit_id, "repo": repo, "branch": branch, "parent": None, **c.meta}
        self.backend.put(self._open_meta_key(repo, c.commit_id), _dumps(meta))
        marker = _dumps({"id": c.commit_id})
        if not self.backend.put_if_absent(self._open_marker_key(repo, branch), marker):
            self.backend.delete(self._open_meta_key(repo, c.commit_id))
            raise Conflict(f"branch {branch} of repo {repo} already has an open commit "
                           f"{self._open_id(repo, branch)}: finish it first (`finish commit {repo}@{branch}`)")
        return c.commit_id

    def _target(self, repo: str, ref: str) -> tuple[str, str | None]:
        """(branch, open commit id or None) that a write to ``ref`` goes to."""
        self._require_repo(repo)
        branch, cid, anc = P.parse_ref(ref)
        if anc:
            raise InvalidName(f"{repo}@{ref}: cannot write to an ancestor; give a branch or an open commit")
        if cid is not None:
            try:
                meta = json.loads(self.backend.get(self._open_meta_key(repo, cid)))
            except KeyMissing:
                if self.backend.exists(self._commit_key(repo, cid)):
                    raise Conflict(f"commit {cid} in repo {repo} is finished: commits are immutable; "
                                   "write to a branch instead") from None
                raise NotFound(f"commit {cid} not found in repo {repo}") from None
            return meta["branch"], cid
        return branch, self._open_id(repo, branch)

    def _append_ops(self, repo: str, cid: str, ops: list[tuple]) -> None:
        if not self.backend.exists(self._open_meta_key(repo, cid)):
            raise Conflict(f"commit {cid} in repo {repo} is not open (finished meanwhile?)")
        self.backend.put(f"repos/{repo}/open-commits/{cid}/ops/{new_commit_id()}.json",
                         _dumps({"ops": [list(o) for o in ops]}))

    def put_files(self, repo: str, ref: str, items: Iterable[tuple[str, Any]], *, append: bool = False,
                  progress: Callable[[int], None] | None = None) -> str:
        """Put many ``(path, src)`` at once, uploading in parallel; one commit for all of them (or
        added to the branch's open commit). Returns the commit id. Paths are checked before anything
        is written."""
        branch, open_id = self._target(repo, ref)
        items = [(P.validate_path_for_write(p), src) for p, src in items]
        have = None if append else self._head_hashes(repo, branch)
        if open_id is not None:
            ops = self._upload(items, append, progress, have)
            self._append_ops(repo, open_id, ops)
            return open_id
        with self.open_commit(repo, branch) as c:
            c.ops.extend(self._upload(items, append, progress, have))
        return c.commit_id

    def _head_hashes(self, repo: str, branch: str) -> Callable[[str], str | None] | None:
        """path → its content hash in the branch head: a blob named there is stored already, so a
        re-put of unchanged files sends nothing (not even a HEAD request)."""
        got = self._read_branch(repo, branch)
        if got is None or not got[0].get("head"):
            return None
        index = self._read_commit(repo, got[0]["head"]).manifest
        if index is None:
            return None

        def have(path: str) -> str | None:
            e = self.manifests.lookup(index, path)
            return e[1] if e else None

        return have

    def _upload(self, items: list[tuple[str, Any]], append: bool, progress: Callable[[int], None] | None,
                have: Callable[[str], str | None] | None = None) -> list[tuple]:
        kind = "append" if append else "put"

        def one(item: tuple[str, Any]) -> tuple:
            h, size = self.put_blob(item[1], have=have(item[0]) if have else None)
            if progress is not None:
                progress(size)
            return (kind, item[0], h, size)

        if len(items) <= 1 or any(isinstance(src, io.IOBase) for _, src in items):
            return [one(i) for i in items]
        # Batches, not one task per file: the executor's per-task cost is as big as a small file's put.
        size = max(1, min(64, len(items) // (IO_THREADS * 2)))
        batches = [items[i:i + size] for i in range(0, len(items), size)]
        return [op for batch in self._pool("io").map(lambda b: [one(i) for i in b], batches) for op in batch]

    def put_file(self, repo: str, ref: str, path: str, src: Any, *, append: bool = False) -> str:
        """Put one file: into the branch's open commit if there is one, else as a commit of its own."""
        return self.put_files(repo, ref, [(path, src)], append=append)

    def delete_file(self, repo: str, ref: str, path: str) -> str:
        branch, open_id = self._target(repo, ref)
        path = P.clean_path(path)
        if open_id is not None:
            self._append_ops(repo, open_id, [("delete", path)])
            return open_id
        self._require_exists(repo, branch, path)
        with self.open_commit(repo, branch) as c:
            c.delete_file(path)
        return c.commit_id

    def _copy_ops(self, src_repo: str, src_ref: str, src_path: str, dst_path: str) -> list[tuple]:
        src = self.inspect_file(src_repo, src_ref, src_path)
        dst = P.clean_path(dst_path)
        if src.type == "file":
            return [("put", P.validate_path_for_write(dst), src.hash, src.size)]
        base = src.path.rstrip("/")
        prefix = "" if dst == "/" else dst
        return [("put", P.validate_path_for_write(prefix + p[len(base):]), h, s)
                for p, h, s in self.iter_entries(src_repo, src_ref, base or "/")]

    def copy_file(self, src_repo: str, src_ref: str, src_path: str, dst_repo: str, dst_ref: str,
                  dst_path: str) -> str:
        """Copy a file or directory from any commit into ``dst_repo@dst_ref`` (its open commit, else a
        commit of its own). No file bytes move. Returns the commit id."""
        branch, open_id = self._target(dst_repo, dst_ref)
        ops = self._copy_ops(src_repo, src_ref, src_path, dst_path)
        if open_id is not None:
            self._append_ops(dst_repo, open_id, ops)
            return open_id
        with self.open_commit(dst_repo, branch) as c:
            c.ops.extend(ops)
        return c.commit_id

    def _require_exists(self, repo: str, ref: str, path: str) -> None:
        if path != "/":
            self.inspect_file(repo, ref, path)

    def finish_commit(self, repo: str, ref: str, *, error: str | None = None, description: str | None = None
                      ) -> CommitInfo:
        """Finish the open commit ``ref`` (its id, or a branch with an open commit)."""
        branch, open_id = self._target(repo, ref)
        if open_id is None:
            raise Conflict(f"{repo}@{ref} has no open commit: start one with `start commit {repo}@{ref}`")
        meta = json.loads(self.backend.get(self._open_meta_key(repo, open_id)))
        if error is not None:
            meta["error"] = error
        if description is not None:
            meta["description"] = description
        ops = _Ops()
        for key in self.backend.list(f"repos/{repo}/open-commits/{open_id}/ops/"):
            ops.extend(tuple(o) for o in json.loads(self.backend.get(key))["ops"])
        landed = self._landed(repo, branch, open_id, meta.get("started", ""))
        info = landed or self._finish_ops(repo, branch, open_id, ops, {
            k: meta[k] for k in ("origin", "description", "provenance", "started", "error")})
        self.backend.delete(self._open_marker_key(repo, branch))
        for key in list(self.backend.list(f"repos/{repo}/open-commits/{open_id}/")):
            self.backend.delete(key)
        return info

    def _landed(self, repo: str, branch: str, cid: str, started: str) -> CommitInfo | None:
        # A finish killed after its commit landed but before cleanup must not land it twice. Only
        # commits that finished after this one started can be it, so the walk stops early.
        got = self._read_branch(repo, branch)
        for c in self._history(repo, got[0].get("head") if got else None):
            if c.id == cid:
                return c
            if not c.finished or c.finished < started:
                break
        return None

    # ================================================================ files
    def _index(self, repo: str, ref: str) -> tuple[CommitInfo, str]:
        c = self.inspect_commit(repo, ref)
        if c.finished is None or c.manifest is None:
            raise Conflict(f"commit {c.id} of repo {repo} is still open: finish it to read its files")
        return c, c.manifest

    def walk(self, repo: str, ref: str, prefix: str = "/") -> Iterator[FileInfo]:
        """Files at or below ``prefix`` in path order; reads only the manifest chunks under it."""
        _, index = self._index(repo, ref)
        for p, h, s in self.manifests.iter_prefix(index, P.clean_path(prefix)):
            yield FileInfo(p, "file", s, h)

    def iter_entries(self, repo: str, ref: str, prefix: str = "/") -> Iterator[Entry]:
        """Like :meth:`walk` but yields plain ``(path, hash, size)`` tuples (fastest)."""
        _, index = self._index(repo, ref)
        return self.manifests.iter_prefix(index, P.clean_path(prefix))

    def iter_file(self, repo: str, ref: str, path: str = "/") -> Iterator[FileInfo]:
        """The direct children of directory ``path`` (dirs end in ``/``), streamed in path order; for a
        file, the file itself."""
        for p, t, s, h in self.iter_file_tuples(repo, ref, path):
            yield FileInfo(p, t, s, h)

    def iter_file_tuples(self, repo: str, ref: str, path: str = "/") -> Iterator[tuple[str, str, int, str]]:
        """:meth:`iter_file` as plain ``(path, type, size, hash)`` tuples (for million-file listings)."""
        _, index = self._index(repo, ref)
        path = P.clean_path(path)
        cut = 1 if path == "/" else len(path) + 1
        it = self.manifests.iter_prefix(index, path)
        first = next(it, None)
        if first is None:
            if path == "/":
                return
            raise NotFound(f"file {path} not found in {repo}@{ref}")
        if first[0] == path:
            yield path, "file", first[2], first[1]
            return
        cur: str | None = None
        h = hashlib.sha256()
        size = 0
        for p, fh, s in _chain([first], it):
            if p.find("/", cut) == -1:
                if cur is not None:
                    yield cur + "/", "dir", size, h.hexdigest()
                    cur = None
                yield p, "file", s, fh
                continue
            d = p[:p.find("/", cut)]
            if d != cur:
                if cur is not None:
                    yield cur + "/", "dir", size, h.hexdigest()
                cur, h, size = d, hashlib.sha256(), 0
            h.update(f"{p[len(d) + 1:]}\0{fh}\n".encode())
            size += s
        if cur is not None:
            yield cur + "/", "dir", size, h.hexdigest()

    def walk_tree(self, repo: str, ref: str, prefix: str = "/") -> Iterator[FileInfo]:
        """Every directory and file below ``prefix`` (not ``prefix`` itself), in Pachyderm's order:
        lexicographic, directories as ``/dir/`` just before their contents, each with its subtree size
        and hash (as :meth:`inspect_file` gives them). This is the tree Pachyderm's glob walks."""
        _, index = self._index(repo, ref)
        prefix = P.clean_path(prefix)
        cut = 1 if prefix == "/" else len(prefix) + 1
        dirs: dict[str, list[Any]] = {}  # dir path → [size, hasher]; pass 1 over the manifest
        for p, fh, s in self.manifests.iter_prefix(index, prefix):
            i = p.find("/", cut)
            while i != -1:
                d = p[:i]
                agg = dirs.get(d)
                if agg is None:
                    agg = dirs[d] = [0, hashlib.sha256()]
                agg[0] += s
                agg[1].update(f"{p[i + 1:]}\0{fh}\n".encode())
                i = p.find("/", i + 1)
        emitted: set[str] = set()
        for p, fh, s in self.manifests.iter_prefix(index, prefix):  # pass 2: chunks are cached
            if p == prefix:
                continue
            i = p.find("/", cut)
            while i != -1:
                d = p[:i]
                if d not in emitted:
                    emitted.add(d)
                    yield FileInfo(d + "/", "dir", dirs[d][0], dirs[d][1].hexdigest())
                i = p.find("/", i + 1)
            yield FileInfo(p, "file", s, fh)

    def list_file(self, repo: str, ref: str, path: str = "/") -> list[FileInfo]:
        return list(self.iter_file(repo, ref, path))

    def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        _, index = self._index(repo, ref)
        path = P.clean_path(path)
        if path != "/":
            e = self.manifests.lookup(index, path)
            if e is not None:
                return FileInfo(e[0], "file", e[2], e[1])
        size, h, count = fold_dir(self.manifests.iter_prefix(index, path), path)
        if count == 0 and path != "/":
            raise NotFound(f"file {path} not found in {repo}@{ref}")
        return FileInfo("/" if path == "/" else path + "/", "dir", size, h)

    def dir_hash(self, repo: str, ref: str, path: str) -> str:
        """The hash of directory ``path`` (see :class:`FileInfo`); the file hash for a file."""
        return self.inspect_file(repo, ref, path).hash

    def open_file(self, repo: str, ref: str, path: str) -> BinaryIO:
        fi = self.inspect_file(repo, ref, path)
        if fi.type != "file":
            raise InvalidPath(f"{repo}@{ref}:{path} is a directory: give a file, or use get file -r")
        return self.open_blob(fi.hash)

    def read_file(self, repo: str, ref: str, path: str) -> bytes:
        with self.open_file(repo, ref, path) as f:
            return f.read()

    def get_files(self, repo: str, ref: str, path: str, dest: str | os.PathLike) -> int:
        """Download ``path`` (a file, or a directory recursively) to local ``dest``, in parallel.
        Returns the number of files written."""
        fi = self.inspect_file(repo, ref, path)
        dest = os.fspath(dest)
        if fi.type == "file":
            os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
            self.get_blob_to(fi.hash, dest)
            return 1
        base = fi.path.rstrip("/")
        cut = len(base) + 1 if base else 1

        def one(e: Entry) -> None:
            target = os.path.join(dest, *e[0][cut:].split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.get_blob_to(e[1], target)

        entries = list(self.iter_entries(repo, ref, base or "/"))
        os.makedirs(dest, exist_ok=True)
        list(self._pool("io").map(one, entries))
        return len(entries)

    def diff_file(self, repo: str, new_ref: str, old_ref: str | None = None, prefix: str = "/"
                  ) -> Iterator[tuple[FileInfo | None, FileInfo | None]]:
        """Files that differ: ``(new, old)``; ``old_ref`` defaults to the parent of ``new_ref``."""
        new, new_index = self._index(repo, new_ref)
        if old_ref is None:
            old_index = (self._index(repo, new.parent)[1] if new.parent else self.manifests.empty_index)
        else:
            old_index = self._index(repo, old_ref)[1]

        def fi(e: Entry | None) -> FileInfo | None:
            return None if e is None else FileInfo(e[0], "file", e[2], e[1])

        for a, b in self.manifests.diff(new_index, old_index, P.clean_path(prefix)):
            yield fi(a), fi(b)

    # ================================================================ blobs
    def _blob_key(self, h: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", h or ""):
            raise InvalidName(f"blob hash {h!r} invalid: a sha256 hex digest")
        return f"blobs/{h[:2]}/{h}"

    def put_blob(self, src: Any, *, have: str | None = None) -> tuple[str, int]:
        """Store content (bytes, a binary file object, or a local path) once; returns (sha256, size).

        Nothing is uploaded when the blob is there already: it was seen by this store object, its hash
        is ``have`` (e.g. the hash the path has in the branch head), or the backend has it."""
        if isinstance(src, (bytes, bytearray, memoryview)):
            return self._put_bytes_blob(bytes(src), have)
        if isinstance(src, str):
            raise TypeError("put_blob/put_file: pass bytes, a binary file or a pathlib.Path, not str")
        if isinstance(src, os.PathLike):
            path = os.fspath(src)
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size <= SMALL_FILE:
                        return self._put_bytes_blob(f.read(), have)
                h = _hash_file(path)
            except FileNotFoundError:
                raise NotFound(f"local file {path} not found") from None
            except IsADirectoryError:
                raise InvalidPath(f"local path {path} is a directory: use put file -r") from None
            self._put_file_blob(h, size, path, have)
            return h, size
        # A file object: small ones in memory, large ones spooled to a temp file while hashing.
        first = _read_upto(src, SMALL_BLOB + 1)
        if len(first) <= SMALL_BLOB:
            return self._put_bytes_blob(first, have)
        with tempfile.NamedTemporaryFile(prefix="pach-put-") as tmp:
            hasher = hashlib.sha256(first)
            tmp.write(first)
            while chunk := src.read(1 << 20):
                hasher.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            h, size = hasher.hexdigest(), tmp.tell()
            self._put_file_blob(h, size, tmp.name, have)
            return h, size

    def _known(self, h: str, have: str | None) -> bool:
        if h == have or h in self._seen:
            self._count(0)
            return True
        return False

    def _put_file_blob(self, h: str, size: int, path: str, have: str | None) -> None:
        if self._known(h, have):
            return
        key = self._blob_key(h)
        if self.backend.exists(key):
            self._count(0)
        else:
            self.backend.put_file(key, path)
            self._count(size)
        self._remember(h)

    def _put_bytes_blob(self, data: bytes, have: str | None = None) -> tuple[str, int]:
        h = hashlib.sha256(data).hexdigest()
        if self._known(h, have):
            return h, len(data)
        key = self._blob_key(h)
        if not self.backend.cheap_exists and len(data) <= SMALL_FILE:
            # One conditional PUT instead of HEAD + PUT: for small blobs on S3 the request, not the
            # bytes, is the cost. (Re-puts of the same paths never get here: ``have`` catches them.)
            self.backend.put_if_absent(key, data)
            self._count(len(data))
        elif self.backend.exists(key):
            self._count(0)
        else:
            self.backend.put(key, data)
            self._count(len(data))
        self._remember(h)
        return h, len(data)

    def _remember(self, h: str) -> None:
        with self._stats_lock:
            if len(self._seen) >= 1_000_000:
                self._seen.clear()  # bounded memory; forgetting only costs a HEAD request
            self._seen.add(h)

    def _count(self, n: int) -> None:
        with self._stats_lock:
            self.bytes_uploaded += n
            if n == 0:
                self.blobs_skipped += 1

    def has_blob(self, h: str) -> bool:
        return self.backend.exists(self._blob_key(h))

    def open_blob(self, h: str) -> BinaryIO:
        try:
            return self.backend.open(self._blob_key(h))
        except KeyMissing:
            raise NotFound(f"blob {h} not in the store {self.url}") from None

    def get_blob(self, h: str) -> bytes:
        with self.open_blob(h) as f:
            return f.read()

    def get_blob_to(self, h: str, local_path: str | os.PathLike) -> None:
        try:
            self.backend.get_to_file(self._blob_key(h), local_path)
        except KeyMissing:
            raise NotFound(f"blob {h} not in the store {self.url}") from None

    # ================================================================ records
    def _record_key(self, key: str, suffix: str) -> str:
        parts = key.split("/") if isinstance(key, str) else [""]
        for i, part in enumerate(parts):
            if part in ("", ".", "..") or not _RECORD_PART.fullmatch(part) or (
                    i < len(parts) - 1 and part.endswith((".json", ".bin"))):
                raise InvalidName(f"record key {key!r} invalid: '/'-separated parts of letters, digits and "
                                  "_.=@:+,- (no empty, '.' or '..' parts)")
        return f"records/{key}{suffix}"

    def put_record(self, key: str, obj: Any) -> None:
        self.backend.put(self._record_key(key, ".json"), _dumps(obj))

    def get_record(self, key: str) -> Any:
        try:
            return json.loads(self.backend.get(self._record_key(key, ".json")))
        except KeyMissing:
            raise NotFound(f"record {key} not found") from None

    def list_records(self, prefix: str = "", *, recursive: bool = True) -> Iterator[str]:
        """Keys of records (JSON and bytes) starting with ``prefix``, sorted; ``recursive=False`` keeps
        only keys with no further ``/`` after the prefix."""
        seen = set()
        # Non-recursive: the backend cuts keys at the next "/" (S3 delimiter listing), so the records
        # below a deeper prefix are never listed.
        for k in self.backend.list("records/" + prefix, delimiter=None if recursive else "/"):
            k = k[len("records/"):]
            for suffix in (".json", ".bin"):
                if k.endswith(suffix):
                    k = k[: -len(suffix)]
                    break
            else:
                continue
            if not recursive and "/" in k[len(prefix):]:
                continue
            if k not in seen:
                seen.add(k)
        return iter(sorted(seen))

    def delete_record(self, key: str) -> None:
        self.backend.delete(self._record_key(key, ".json"))
        self.backend.delete(self._record_key(key, ".bin"))

    def update_record(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Read-modify-write ``key`` atomically: ``fn(old or None) -> new``, retried on conflict."""
        rkey = self._record_key(key, ".json")
        for attempt in range(CAS_ATTEMPTS):
            try:
                data, etag = self.backend.get_with_etag(rkey)
                old: Any = json.loads(data)
            except KeyMissing:
                etag, old = None, None
            new = fn(old)
            ok = (self.backend.put_if_match(rkey, _dumps(new), etag) if etag is not None
                  else self.backend.put_if_absent(rkey, _dumps(new)))
            if ok:
                return new
            _backoff(attempt)
        raise Conflict(f"record {key}: too many concurrent updates")

    def put_bytes(self, key: str, data: bytes) -> None:
        self.backend.put(self._record_key(key, ".bin"), bytes(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.backend.get(self._record_key(key, ".bin"))
        except KeyMissing:
            raise NotFound(f"record {key} not found") from None


class OpenCommit:
    """A commit being written by this process (``store.open_commit``). Leaving the ``with`` block
    finishes it; an exception inside leaves nothing visible."""

    def __init__(self, store: Store, repo: str, branch: str, commit_id: str, meta: dict[str, Any]):
        self.store, self.repo, self.branch, self.commit_id, self.meta = store, repo, branch, commit_id, meta
        self.ops = _Ops()
        self.info: CommitInfo | None = None

    def put_file(self, path: str, src: Any, *, append: bool = False) -> FileInfo:
        path = P.validate_path_for_write(path)
        h, size = self.store.put_blob(src)
        self.ops.add("append" if append else "put", path, h, size)
        return FileInfo(path, "file", size, h)

    def put_files(self, items: Iterable[tuple[str, Any]], *, append: bool = False,
                  progress: Callable[[int], None] | None = None) -> None:
        """Many files at once, uploaded in parallel."""
        checked = [(P.validate_path_for_write(p), src) for p, src in items]
        self.ops.extend(self.store._upload(checked, append, progress))

    def put_entry(self, path: str, h: str, size: int) -> None:
        """Add a file whose blob is already stored (no bytes move)."""
        self.ops.add("put", P.validate_path_for_write(path), h, int(size))

    def delete_file(self, path: str) -> None:
        self.ops.add("delete", P.clean_path(path))

    def copy_file(self, src_repo: str, src_ref: str, src_path: str, dst_path: str) -> int:
        """Copy a file or a directory (recursively) from any commit; no bytes move. Returns the count."""
        ops = self.store._copy_ops(src_repo, src_ref, src_path, dst_path)
        self.ops.extend(ops)
        return len(ops)

    def finish(self) -> CommitInfo:
        if self.info is None:
            self.info = self.store._finish_ops(self.repo, self.branch, self.commit_id, self.ops, self.meta)
        return self.info

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.finish()




def _read_upto(src: Any, n: int) -> bytes:
    """Read ``n`` bytes or to EOF: pipes, sockets and HTTP bodies may return less than asked."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = src.read(n - got)
        if isinstance(chunk, str):
            raise TypeError("put_file: open the file in binary mode ('rb')")
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _chain(*its: Iterable[Any]) -> Iterator[Any]:
    for it in its:
        yield from it


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.002 * (2 ** min(attempt, 10)), 0.25)))

