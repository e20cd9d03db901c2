"""Datums: how a pipeline's input tree over pinned commits becomes units of work.

Owns, following Pachyderm 2.x (``src/server/worker/datum``, ``worker/common``):

- the input tree → datums: ``pfs`` (one datum per glob match), ``cross`` (Cartesian product),
  ``union`` (concatenation, identical datums collapse), ``join`` (by ``join_on`` key, with
  ``outer_join``), ``group`` (by ``group_by`` key, every child's inputs with one key in one datum),
  ``cron`` (a pfs input on ``master`` with glob ``/*`` over the tick repo) and ``s3`` inputs (one datum
  input at ``/``, nothing staged);
- datum ids (BLAKE2b-256 over name, repo, branch and path of each input, no content: stable across
  commits, runs and machines) and datum hashes (id + file content hashes + pipeline salt);
- the incremental plan against the last successful job (new / skipped / removed);
- datum sets, the unit one Airflow mapped task runs.

Everything works on plain iterables; only :func:`iter_datums` and :func:`pfs_matches` read the store.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pach_airflow.errors import DatumError, NotFound
from pach_airflow.glob import compile_glob, glob_file

__all__ = [
    "SUCCEEDED_STATES",
    "Datum",
    "DatumInput",
    "DatumPlan",
    "PfsLeaf",
    "cut_datum_sets",
    "datum_hash",
    "datum_id",
    "datums_from_input",
    "input_leaves",
    "iter_datums",
    "pfs_matches",
    "pipeline_name",
    "plan_incremental",
    "plan_incremental_diff",
    "spec_input",
]


@dataclass(frozen=True, slots=True)
class DatumInput:
    """One input of a datum: a file or directory (path ends with ``/``) of one commit, under an
    input name. ``join_on`` / ``group_by`` are this path's keys; the flags tell the runners how to stage."""

    name: str
    repo: str
    branch: str
    commit: str
    path: str
    hash: str
    size: int
    join_on: str = ""
    group_by: str = ""
    lazy: bool = False
    empty_files: bool = False
    s3: bool = False
    reference: bool = False
    outer_join: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatumInput:
        return cls(**{k: d[k] for k in _INPUT_FIELDS if k in d})


_INPUT_FIELDS = tuple(DatumInput.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Datum:
    id: str
    hash: str
    inputs: tuple[DatumInput, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "hash": self.hash, "inputs": [i.to_dict() for i in self.inputs]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Datum:
        return cls(d["id"], d["hash"], tuple(DatumInput.from_dict(i) for i in d["inputs"]))

    @property
    def size(self) -> int:
        return sum(i.size for i in self.inputs)


# --------------------------------------------------------------------------------- ids and hashes

_I64 = struct.Struct(">q")
_blake2b = hashlib.blake2b


def _id_chunk(name: str, repo: str, branch: str, path: str) -> bytes:
    """One input's share of the datum id: each string followed by its length as int64 big-endian."""
    out = bytearray()
    for s in (name, repo, branch, path):
        b = s.encode()
        out += b
        out += _I64.pack(len(b))
    return bytes(out)


def datum_id(inputs: Iterable[DatumInput]) -> str:
    """``common.DatumID``: hex BLAKE2b-256 over name, repo, branch and path (each followed by its
    length) of every input in order. No content goes in, so the id survives new commits."""
    h = hashlib.blake2b(digest_size=32)
    for i in inputs:
        h.update(_id_chunk(i.name, i.repo, i.branch, i.path))
    return h.hexdigest()


def datum_hash(datum_id: str, inputs: Iterable[DatumInput], salt: str) -> str:
    """``common.HashDatum``: hex BLAKE2b-256 of the id, each input's content hash (except
    ``reference`` inputs) and the pipeline salt. It changes when any staged byte changes."""
    h = hashlib.blake2b(datum_id.encode(), digest_size=32)
    for i in inputs:
        if not i.reference:
            h.update(i.hash.encode())
    h.update(salt.encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------- the input tree

def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a spec node, whether the spec is a pydantic model or a plain dict."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
    else:
        value = getattr(obj, name, default)
    return default if value is None else value


@dataclass(frozen=True)
class PfsLeaf:
    """A pfs (or cron, or s3) input, with its defaults filled in."""

    name: str
    repo: str
    branch: str
    glob: str
    join_on: str = ""
    group_by: str = ""
    outer_join: bool = False
    lazy: bool = False
    empty_files: bool = False
    s3: bool = False
    reference: bool = False
    cron: bool = False


def _leaf(node: Any, pipeline: str) -> PfsLeaf | None:
    pfs = _get(node, "pfs")
    if pfs is not None:
        repo = _get(pfs, "repo", "")
        return PfsLeaf(
            name=_get(pfs, "name", "") or repo,
            repo=repo,
            branch=_get(pfs, "branch", "") or "master",
            glob=_get(pfs, "glob", ""),
            join_on=_get(pfs, "join_on", ""),
            group_by=_get(pfs, "group_by", ""),
            outer_join=bool(_get(pfs, "outer_join", False)),
            lazy=bool(_get(pfs, "lazy", False)),
            empty_files=bool(_get(pfs, "empty_files", False)),
            s3=bool(_get(pfs, "s3", False)),
            reference=bool(_get(pfs, "reference", False)),
        )
    cron = _get(node, "cron")
    if cron is not None:
        # create.go createCron: a pfs input on master with glob "/*" over the tick repo
        name = _get(cron, "name", "")
        return PfsLeaf(name=name, repo=_get(cron, "repo", "") or f"{pipeline}_{name}", branch="master",
                       glob="/*", cron=True)
    return None


_COMBINATORS = ("cross", "union", "join", "group")


def _kind(node: Any) -> tuple[str, Any]:
    leaf_like = _get(node, "pfs") is not None or _get(node, "cron") is not None
    if leaf_like:
        return "leaf", None
    for kind in _COMBINATORS:
        children = _get(node, kind)
        if children is not None:
            return kind, list(children)
    raise DatumError(f"input {node!r}: set one of pfs, cron, cross, union, join or group")


def input_leaves(node: Any, pipeline: str = "") -> list[PfsLeaf]:
    """Every pfs / cron input of the tree, in tree order."""
    if node is None:
        return []
    kind, children = _kind(node)
    if kind == "leaf":
        leaf = _leaf(node, pipeline)
        return [leaf] if leaf else []
    return [leaf for c in children for leaf in input_leaves(c, pipeline)]


def spec_input(spec: Any) -> Any:
    """The input tree of a spec (model or dict); a bare input tree is returned as it is."""
    inp = _get(spec, "input")
    return inp if inp is not None else (spec if _is_input_node(spec) else None)


def _is_input_node(obj: Any) -> bool:
    return any(_get(obj, k) is not None for k in ("pfs", "cron", *_COMBINATORS))


def pipeline_name(spec: Any) -> str:
    """``spec.pipeline.name``, or "" (a bare input tree has none)."""
    return _get(_get(spec, "pipeline"), "name", "")


# ------------------------------------------------------------------------------------ raw datums
# Inside this module a datum under construction is a tuple of (DatumInput, id chunk) pairs: the id
# chunk of each input is computed once, so a cross of 1,000 x 1,000 hashes bytes it already has.

_Item = tuple[DatumInput, bytes]
_Raw = tuple[_Item, ...]
Matches = Callable[[PfsLeaf], Iterable[Any]]


def _leaf_items(leaf: PfsLeaf, matches: Matches, commit_of: Callable[[PfsLeaf], str | None]) -> Iterator[_Raw]:
    commit = commit_of(leaf)
    if commit is None:
        return
    g = compile_glob(leaf.glob)
    # name, repo and branch are the same for every match: their share of the id is computed once
    head = _id_chunk(leaf.name, leaf.repo, leaf.branch, "")[:-8]
    pack = _I64.pack
    name, repo, branch, join_on, group_by = leaf.name, leaf.repo, leaf.branch, leaf.join_on, leaf.group_by
    flags = (leaf.lazy, leaf.empty_files, leaf.s3, leaf.reference, leaf.outer_join)
    for fi in matches(leaf):
        path = fi.path
        inp = DatumInput(name, repo, branch, commit, path, fi.hash, fi.size,
                         g.replace(path, join_on) if join_on else "",
                         g.replace(path, group_by) if group_by else "", *flags)
        pb = path.encode()
        yield ((inp, head + pb + pack(len(pb))),)


def _raw_datums(node: Any, matches: Matches, commit_of: Callable[[PfsLeaf], str | None],
                pipeline: str) -> Iterator[_Raw]:
    kind, children = _kind(node)
    if kind == "leaf":
        leaf = _leaf(node, pipeline)
        if leaf is not None:
            yield from _leaf_items(leaf, matches, commit_of)
        return
    if not children:
        return
    sub = [(c, lambda c=c: _raw_datums(c, matches, commit_of, pipeline)) for c in children]
    if kind == "cross":
        yield from _cross([make for _, make in sub])
    elif kind == "union":
        yield from _union(sub, pipeline)
    elif kind == "join":
        yield from _join([make() for _, make in sub])
    else:
        yield from _group([make() for _, make in sub])


def _cross(makers: list[Callable[[], Iterator[_Raw]]]) -> Iterator[_Raw]:
    """worker.go iterate(): the Cartesian product, first child outermost; any empty child empties it.
    The first child streams; the others are held in memory once."""
    rest = [list(make()) for make in makers[1:]]
    if any(not r for r in rest):
        return
    first = makers[0]()
    if not rest:
        yield from first
        return

    def product(prefix: _Raw, depth: int) -> Iterator[_Raw]:
        if depth == len(rest):
            yield prefix
            return
        for d in rest[depth]:
            yield from product(prefix + d, depth + 1)

    if len(rest) == 1:
        only = rest[0]
        for a in first:
            for b in only:
                yield a + b
        return
    for a in first:
        yield from product(a, 0)


def _signatures(node: Any, pipeline: str) -> set[tuple[str, str, str]]:
    return {(leaf.name, leaf.repo, leaf.branch) for leaf in input_leaves(node, pipeline)}


def _union(sub: list[tuple[Any, Callable[[], Iterator[_Raw]]]], pipeline: str) -> Iterator[_Raw]:
    """Concatenation; identical datums (same id) collapse into one, as in Pachyderm's datum file set.
    Duplicates can only come from children sharing an input (name, repo, branch), so only then are
    ids remembered."""
    seen_sigs: set[tuple[str, str, str]] = set()
    overlap = False
    for child, _ in sub:
        sigs = _signatures(child, pipeline)
        overlap = overlap or bool(sigs & seen_sigs)
        seen_sigs |= sigs
    if not overlap:
        for _, make in sub:
            yield from make()
        return
    seen: set[bytes] = set()
    for _, make in sub:
        for raw in make():
            key = hashlib.blake2b(b"".join(c for _, c in raw), digest_size=32).digest()
            if key not in seen:
                seen.add(key)
                yield raw


def _items_by_key(child: Iterable[_Raw], key_of: Callable[[DatumInput], str], *, dedupe: bool,
                  order_by_id: bool) -> dict[str, list[_Item]]:
    """worker.go processKeyTask: every input of every datum of a child, filed under its key. Inputs
    come in the child's datum-id order (Pachyderm's datum file sets are sorted by id)."""
    raws: Iterable[_Raw] = child
    if order_by_id:
        raws = sorted(child, key=lambda r: hashlib.blake2b(b"".join(c for _, c in r), digest_size=32).digest())
    out: dict[str, list[_Item]] = {}
    seen: set[bytes] = set()
    for raw in raws:
        for item in raw:
            if dedupe:
                if item[1] in seen:
                    continue
                seen.add(item[1])
            out.setdefault(key_of(item[0]), []).append(item)
    return out


def _join(children: list[Iterator[_Raw]]) -> Iterator[_Raw]:
    """worker.go processMergeTask(JOIN): per key, the cross product of the files of every child that
    has the key; when a child lacks the key, only the outer-join inputs among the present ones make a
    datum. Identical datums collapse (the same input repeated in a child counts once)."""
    by_child = [_items_by_key(c, lambda i: i.join_on, dedupe=True, order_by_id=False) for c in children]
    keys = sorted(set().union(*by_child))
    n = len(by_child)
    for key in keys:
        present = [d[key] for d in by_child if key in d]
        if len(present) < n:
            present = [[it for it in items if it[0].outer_join] for items in present]
            present = [items for items in present if items]
            if not present:
                continue
        yield from _product(present)


def _product(lists: list[list[_Item]]) -> Iterator[_Raw]:
    if not lists:
        return
    if len(lists) == 1:
        for it in lists[0]:
            yield (it,)
        return
    for it in lists[0]:
        for tail in _product(lists[1:]):
            yield (it,) + tail


def _group(children: list[Iterator[_Raw]]) -> Iterator[_Raw]:
    """worker.go processMergeTask(GROUP): one datum per key seen in any child, holding every input of
    every child with that key (children in order); a full outer merge, no product."""
    by_child = [_items_by_key(c, lambda i: i.group_by, dedupe=False, order_by_id=True) for c in children]
    for key in sorted(set().union(*by_child)):
        items: list[_Item] = []
        for d in by_child:
            items.extend(d.get(key, ()))
        yield tuple(items)


def _finish(raw: _Raw, salt_b: bytes) -> Datum:
    """Datum id and hash of a raw datum (the same bytes :func:`datum_id` / :func:`datum_hash` hash)."""
    if len(raw) == 1:
        inp, chunk = raw[0]
        did = _blake2b(chunk, digest_size=32).hexdigest()
        h = _blake2b(did.encode(), digest_size=32)
        if not inp.reference:
            h.update(inp.hash.encode())
        h.update(salt_b)
        return Datum(did, h.hexdigest(), (inp,))
    did = _blake2b(b"".join([c for _, c in raw]), digest_size=32).hexdigest()
    h = _blake2b(did.encode(), digest_size=32)
    for inp, _ in raw:
        if not inp.reference:
            h.update(inp.hash.encode())
    h.update(salt_b)
    return Datum(did, h.hexdigest(), tuple([inp for inp, _ in raw]))


def datums_from_input(input: Any, matches: Matches, *, commits: Mapping[tuple[str, str], str | None] | None = None,
                      salt: str = "", pipeline: str = "") -> Iterator[Datum]:
    """The datums of an input tree, given ``matches(leaf)``: the glob matches (FileInfo-like, with
    ``path``, ``hash``, ``size``) of one pfs input. ``commits`` pins each (repo, branch); a pair mapped
    to None (a branch without a commit) gives that input no datums. Without ``commits`` every input's
    commit is recorded as "". Order: streaming order, unspecified (sort by id to compare)."""

    def commit_of(leaf: PfsLeaf) -> str | None:
        if commits is None:
            return ""
        key = (leaf.repo, leaf.branch)
        if key not in commits:
            raise DatumError(f"input {leaf.name}: no commit pinned for {leaf.repo}@{leaf.branch}")
        return commits[key]

    if input is None:
        return
    salt_b = salt.encode()
    for raw in _raw_datums(input, matches, commit_of, pipeline):
        yield _finish(raw, salt_b)


# ----------------------------------------------------------------------------------- the store

def pfs_matches(store: Any, leaf: PfsLeaf, commit: str) -> Iterator[Any]:
    """The glob matches of one pfs input in ``commit``; an s3 input gives the repo root alone."""
    if leaf.s3:
        yield _s3_root(store, leaf.repo, commit)
        return
    yield from glob_file(store, leaf.repo, commit, leaf.glob)


def _s3_root(store: Any, repo: str, commit: str) -> Any:
    from pach_airflow.pfs.info import FileInfo

    try:
        return store.inspect_file(repo, commit, "/")
    except NotFound:
        return FileInfo("/", "dir", 0, "")


def iter_datums(store: Any, spec: Any, commits: Mapping[tuple[str, str], str | None], salt: str) -> Iterator[Datum]:
    """The datums of ``spec`` (a PipelineSpec, or its ``input``) over the pinned ``commits``
    (``(repo, branch) -> commit id``, None for a branch without a commit)."""
    inp = spec_input(spec)
    pipeline = pipeline_name(spec)

    def matches(leaf: PfsLeaf) -> Iterable[Any]:
        return pfs_matches(store, leaf, commits[(leaf.repo, leaf.branch)])

    return datums_from_input(inp, matches, commits=commits, salt=salt, pipeline=pipeline)


# ----------------------------------------------------------------------------------- incremental

SUCCEEDED_STATES = frozenset({"SUCCESS", "SKIPPED"})


@dataclass
class DatumPlan:
    """``to_run``: new or changed datums (or every datum with ``every_job``); ``skipped``: same id
    and hash as a datum that succeeded in the base job; ``removed``: ids of the base job's datums
    that are gone (their outputs leave the output commit). A changed datum is in ``to_run`` and its
    id in ``changed`` (its old outputs must go too)."""

    to_run: list[Datum] = field(default_factory=list)
    skipped: list[Datum] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.to_run) + len(self.skipped)


def _base_entry(value: Any) -> tuple[str, str]:
    if isinstance(value, (tuple, list)):  # the common, fast case
        return value[0], value[1]
    if isinstance(value, Mapping):
        return value.get("hash", ""), value.get("state", "")
    return value[0], value[1]


def plan_incremental(datums: Iterable[Datum], base: Mapping[str, Any] | None, *,
                     every_job: bool = False) -> DatumPlan:
    """Diff ``datums`` against ``base`` (datum id → (hash, state) of the last successful job, or
    None for a first job). A datum is skipped when its id and hash are in the base with a succeeded
    state (SUCCESS, or SKIPPED there because an earlier job processed it); everything else runs
    (pending_job.go / transform worker.go). ``every_job`` (``reprocess_spec: every_job``) skips
    nothing but still reports removed datums."""
    plan = DatumPlan()
    if not base:
        plan.to_run = list(datums)
        return plan
    seen: set[str] = set()
    for d in datums:
        seen.add(d.id)
        entry = base.get(d.id)
        if entry is None:
            plan.to_run.append(d)
            continue
        h, state = _base_entry(entry)
        if not every_job and h == d.hash and state in SUCCEEDED_STATES:
            plan.skipped.append(d)
        else:
            plan.to_run.append(d)
            plan.changed.append(d.id)
    plan.removed = [i for i in base if i not in seen]
    return plan


# ------------------------------------------------------------------------- incremental, from diffs

def _as_tree(node: Any, pipeline: str) -> dict[str, Any] | None:
    """The input tree as plain dicts with every leaf a filled-in pfs input; None when a part of it
    (s3, join, group) cannot be re-planned from a diff."""
    kind, children = _kind(node)
    if kind == "leaf":
        leaf = _leaf(node, pipeline)
        if leaf is None or leaf.s3:
            return None
        return {"leaf": leaf}
    if kind not in ("cross", "union"):
        return None
    subs = [_as_tree(c, pipeline) for c in children]
    if any(s is None for s in subs):
        return None
    return {kind: subs}


def _tree_leaves(tree: dict[str, Any]) -> list[PfsLeaf]:
    if "leaf" in tree:
        return [tree["leaf"]]
    return [leaf for c in next(iter(tree.values())) for leaf in _tree_leaves(c)]


def _containing(tree: dict[str, Any], target: PfsLeaf) -> dict[str, Any] | None:
    """The part of the tree whose datums can hold an input of ``target``: a union keeps only its
    children that contain it; a cross keeps every child (each contributes to such datums)."""
    if "leaf" in tree:
        return tree if tree["leaf"] == target else None
    if "union" in tree:
        kept = [t for t in (_containing(c, target) for c in tree["union"]) if t is not None]
        return {"union": kept} if kept else None
    kids = tree["cross"]
    if not any(_containing(c, target) is not None for c in kids):
        return None
    return {"cross": [(_containing(c, target) if _containing(c, target) is not None else c) for c in kids]}


def _to_spec_node(tree: dict[str, Any]) -> dict[str, Any]:
    if "leaf" in tree:
        return {"leaf_object": tree["leaf"]}
    kind, kids = next(iter(tree.items()))
    return {kind: [_to_spec_node(c) for c in kids]}


def _affected_matches(store: Any, leaf: PfsLeaf, new_commit: str, old_commit: str
                      ) -> tuple[list[Any], list[Any]] | None:
    """The matches of ``leaf`` that a change between the two commits touches: (present now, gone),
    from the store's diff (which skips unchanged manifest chunks). None when nothing changed."""
    from pach_airflow.pfs.info import FileInfo

    g = compile_glob(leaf.glob)
    if g.above_root:
        return None  # it matches nothing, before or after
    base = "/" if g.pattern == "/" else g.literal_prefix
    base_dir = base.rstrip("/") + "/"
    files: dict[str, Any] = {}
    dirs: set[str] = set()
    for new, old in store.diff_file(leaf.repo, new_commit, old_commit, prefix=base):
        f = new if new is not None else old
        if g.pattern == "/":
            dirs.add("/")
            continue
        if g.match(f.path):
            files[f.path] = new
        cut = f.path.rfind("/")
        while cut >= len(base_dir):
            d = f.path[:cut + 1]
            if d in dirs:
                break
            dirs.add(d)
            cut = f.path.rfind("/", 0, cut)
    if not files and not dirs:
        return None
    present: list[Any] = [fi for fi in files.values() if fi is not None]
    gone: list[Any] = [FileInfo(p, "file", 0, "") for p, fi in files.items() if fi is None]
    for d in sorted(dirs):
        if not g.match(d):
            continue
        # the directory's new size and tree hash, or gone when no file is left below it
        try:
            info = store.inspect_file(leaf.repo, new_commit, d)
        except NotFound:
            info = None
        if d == "/" and next(iter(store.walk(leaf.repo, new_commit, "/")), None) is None:
            info = None  # an empty commit has no root
        if info is None or info.type != "dir":
            gone.append(FileInfo(d, "dir", 0, ""))
        else:
            present.append(info)
    return present, gone


def plan_incremental_diff(store: Any, spec: Any, commits: Mapping[tuple[str, str], str | None], salt: str, *,
                          base: Mapping[str, Any] | None, base_commits: Mapping[tuple[str, str], str | None],
                          every_job: bool = False) -> DatumPlan | None:
    """The plan of :func:`plan_incremental`, computed from what changed since the base job instead of
    from every datum: the store's diff between each input's base commit and its new commit gives the
    touched glob matches, and only datums holding one of those are built. Skipped datums are
    returned as ids (str) — their records are the base job's.

    Valid only when the base job ran this same input tree with this same ``salt`` (the caller knows:
    the job record pins both). Returns None when the fast path does not apply (no base, every_job,
    join/group/s3 inputs, a base datum that did not succeed, an input without a base commit); the
    caller then plans every datum.
    """
    if every_job or base is None:
        return None
    pipeline = pipeline_name(spec)
    inp = spec_input(spec)
    tree = _as_tree(inp, pipeline) if inp is not None else None
    if tree is None:
        return None
    for value in base.values():
        if _base_entry(value)[1] not in SUCCEEDED_STATES:
            return None  # those must run again, and only a full plan knows their inputs
    leaves = list(dict.fromkeys(_tree_leaves(tree)))
    touched: dict[PfsLeaf, tuple[list[Any], list[Any]]] = {}
    for leaf in leaves:
        key = (leaf.repo, leaf.branch)
        if key not in commits or commits[key] is None or base_commits.get(key) is None:
            return None
        if commits[key] == base_commits[key]:
            continue
        got = _affected_matches(store, leaf, commits[key], base_commits[key])
        if got is not None:
            touched[leaf] = got
    plan = DatumPlan()
    if not touched:
        plan.skipped = list(base)
        return plan

    def full_matches(leaf: PfsLeaf) -> Iterable[Any]:
        return glob_file(store, leaf.repo, commits[(leaf.repo, leaf.branch)], leaf.glob)

    new_by_id: dict[str, Datum] = {}
    gone_ids: set[str] = set()
    for target, (present, gone) in touched.items():
        sub = _containing(tree, target)
        if sub is None:
            continue
        node = _to_spec_node(sub)
        if present:
            for d in _datums_of_tree(node, lambda leaf, t=target, p=present: p if leaf == t else full_matches(leaf),
                                     commits, salt):
                new_by_id.setdefault(d.id, d)
        if gone:
            # a base datum holding a gone match is removed; its other inputs were matches then, which
            # are matches now or gone ones
            def then(leaf: PfsLeaf, t: PfsLeaf = target, g: list[Any] = gone) -> Iterable[Any]:
                if leaf == t:
                    return g
                extra = touched.get(leaf, ((), ()))[1]
                return list(full_matches(leaf)) + list(extra)

            for d in _datums_of_tree(node, then, commits, salt):
                if d.id in base:
                    gone_ids.add(d.id)
    for did, d in new_by_id.items():
        entry = base.get(did)
        if entry is None:
            plan.to_run.append(d)
        elif _base_entry(entry)[0] != d.hash:
            plan.to_run.append(d)
            plan.changed.append(did)
    gone_ids -= new_by_id.keys()
    plan.removed = sorted(gone_ids)
    run_ids = {d.id for d in plan.to_run}
    plan.skipped = [i for i in base if i not in gone_ids and i not in run_ids]
    return plan


def _datums_of_tree(node: dict[str, Any], matches: Matches, commits: Mapping[tuple[str, str], str | None],
                    salt: str) -> Iterator[Datum]:
    salt_b = salt.encode()

    def commit_of(leaf: PfsLeaf) -> str | None:
        return commits.get((leaf.repo, leaf.branch))

    for raw in _raw_tree(node, matches, commit_of):
        yield _finish(raw, salt_b)


def _raw_tree(node: dict[str, Any], matches: Matches, commit_of: Callable[[PfsLeaf], str | None]) -> Iterator[_Raw]:
    if "leaf_object" in node:
        yield from _leaf_items(node["leaf_object"], matches, commit_of)
        return
    kind, kids = next(iter(node.items()))
    makers = [lambda k=k: _raw_tree(k, matches, commit_of) for k in kids]
    if kind == "cross":
        yield from _cross(makers)
    else:
        for make in makers:
            yield from make()


# ------------------------------------------------------------------------------------- datum sets

def cut_datum_sets(datums: Sequence[Datum], spec: Any = None, *, cap: int = 1024) -> list[list[Datum]]:
    """Cut ``datums`` (in the order given) into the sets the mapped tasks run.

    ``datum_set_spec.number``: datums per set; ``size_bytes``: a set closes once its inputs reach that
    size; ``per_worker``: sets per worker (``parallelism_spec.constant`` workers). Unset: one datum per
    set while that gives at most ``cap`` sets (Airflow's ``max_map_length``). Whatever the spec, sets
    grow so there are never more than ``cap``; never more sets than datums; no datums, no sets.
    """
    datums = list(datums)
    n = len(datums)
    if n == 0:
        return []
    if cap < 1:
        raise DatumError(f"datum set cap {cap} must be at least 1 (Airflow's [core] max_map_length)")
    dss = _get(spec, "datum_set_spec")
    number = int(_get(dss, "number", 0) or 0)
    size_bytes = int(_get(dss, "size_bytes", 0) or 0)
    per_worker = int(_get(dss, "per_worker", 0) or 0)
    if number > 0:
        sets = _chunks(datums, number)
    elif size_bytes > 0:
        sets = []
        cur: list[Datum] = []
        acc = 0
        for d in datums:
            cur.append(d)
            acc += d.size
            if acc >= size_bytes:
                sets.append(cur)
                cur, acc = [], 0
        if cur:
            sets.append(cur)
    elif per_worker > 0:
        workers = max(1, int(_get(_get(spec, "parallelism_spec"), "constant", 1) or 1))
        sets = _chunks(datums, math.ceil(n / (workers * per_worker)))
    else:
        sets = _chunks(datums, 1)
    if len(sets) > cap:
        sets = _chunks(datums, math.ceil(n / cap))
    return sets


def _chunks(datums: list[Datum], size: int) -> list[list[Datum]]:
    size = max(1, size)
    return [datums[i:i + size] for i in range(0, len(datums), size)]
