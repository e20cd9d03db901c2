"""Commit manifests that scale to millions of files: sorted, chunked, content-addressed.

Owns the manifest format and the algorithms over it (build, read a path range, merge changes, diff).

A manifest is the sorted list of a commit's files, one ``path\\thash\\tsize`` line each. It is cut
into **chunks** at content-defined boundaries: a chunk ends after a path whose crc32 is 0 mod
:data:`BOUNDARY` (about 2,048 files a chunk), or at :data:`MAX_ENTRIES` / :data:`MAX_BYTES`. Each chunk
is stored zlib-compressed under ``manifests/<sha[:2]>/<sha>`` (sha256 of the uncompressed text), so
identical chunks are stored once across commits and repos. The **index** (one line per chunk:
first path, last path, chunk hash, file count, bytes) is stored the same way; a commit names its index.

Why this shape:
- listing below a prefix reads only the chunks whose [first, last] range overlaps the prefix;
- a change to one file rewrites one chunk (the untouched chunks of the parent are reused verbatim),
  so commits are cheap and a diff skips every chunk whose hash is the same on both sides;
- a 1,000,000-file commit is ~500 chunks streamed one at a time: memory stays at one chunk.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import threading
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from pach_airflow.errors import BackendError, InvalidPath
from pach_airflow.pfs.backend import Backend, KeyMissing

Entry = tuple[str, str, int]  # (path, content hash, size)

BOUNDARY = 2048
MAX_ENTRIES = 8192
MAX_BYTES = 4 << 20
# A rewritten chunk smaller than this is merged with the next one, so that deletes do not leave the
# manifest fragmented into tiny chunks.
MIN_ENTRIES = 256
COMPRESS_LEVEL = 1
READ_AHEAD = 8
EMPTY_INDEX = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class ChunkRef:
    first: str
    last: str
    hash: str
    count: int
    bytes: int


def manifest_key(h: str) -> str:
    return f"manifests/{h[:2]}/{h}"


def is_boundary(path: str) -> bool:
    return zlib.crc32(path.encode()) % BOUNDARY == 0


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The [lo, hi) string range holding ``prefix`` and everything below it (``hi`` None: no end)."""
    if prefix == "/":
        return "", None
    # Every path below ``prefix`` starts with ``prefix + "/"`` and so sorts before ``prefix + "0"``
    # ("0" is the character after "/").
    return prefix, prefix + "0"


def under(path: str, prefix: str) -> bool:
    """True if ``path`` is ``prefix`` or below it (``prefix`` cleaned, ``/`` = everything)."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


class Manifests:
    """Reads and writes manifest chunks and indexes on one backend, with an LRU of decoded chunks."""

    def __init__(self, backend: Backend, cache_chunks: int = 48,
                 executor: Callable[[], Executor] | None = None):
        self.backend = backend
        self.executor = executor  # gives the pool for parallel chunk reads (None: read one by one)
        self._cache: OrderedDict[str, list[Entry]] = OrderedDict()
        self._index_cache: OrderedDict[str, list[ChunkRef]] = OrderedDict()
        self._lock = threading.Lock()
        self._cache_chunks = cache_chunks
        # The empty manifest's hash; read without a request, written by the first commit that uses it
        # (so that a read-only user can open and read a store).
        self.empty_index = EMPTY_INDEX

    # -- raw objects ---------------------------------------------------------------------------
    def _put_text(self, text: bytes, *, check: bool = False) -> str:
        h = hashlib.sha256(text).hexdigest()
        key = manifest_key(h)
        if check and self.backend.exists(key):
            return h
        self.backend.put(key, zlib.compress(text, COMPRESS_LEVEL))
        return h

    def _get_text(self, h: str) -> bytes:
        try:
            raw = self.backend.get(manifest_key(h))
        except KeyMissing:
            raise BackendError(f"{self.backend.where(manifest_key(h))}: manifest object missing "
                               "(the store is damaged: was it partly deleted?)") from None
        return zlib.decompress(raw)

    # -- chunks --------------------------------------------------------------------------------
    def read_chunk(self, h: str) -> list[Entry]:
        with self._lock:
            hit = self._cache.get(h)
            if hit is not None:
                self._cache.move_to_end(h)
                return hit
        lines = self._get_text(h).decode().split("\n")
        lines.pop()  # the text ends with a newline
        entries: list[Entry] = [(p, fh, int(s)) for p, fh, s in (line.split("\t") for line in lines)]
        with self._lock:
            self._cache[h] = entries
            while len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return entries

    def write_chunk(self, entries: list[Entry]) -> ChunkRef:
        text = "".join(f"{p}\t{h}\t{s}\n" for p, h, s in entries).encode()
        h = self._put_text(text)
        with self._lock:
            self._cache[h] = entries
            while len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return ChunkRef(entries[0][0], entries[-1][0], h, len(entries), sum(e[2] for e in entries))

    # -- indexes -------------------------------------------------------------------------------
    def read_index(self, h: str) -> list[ChunkRef]:
        if h == EMPTY_INDEX:
            return []
        with self._lock:
            hit = self._index_cache.get(h)
            if hit is not None:
                return hit
        refs = []
        for line in self._get_text(h).decode().split("\n"):
            if line:
                first, last, ch, count, size = line.split("\t")
                refs.append(ChunkRef(first, last, ch, int(count), int(size)))
        with self._lock:
            self._index_cache[h] = refs
            while len(self._index_cache) > 16:
                self._index_cache.popitem(last=False)
        return refs

    def write_index(self, refs: list[ChunkRef]) -> str:
        text = "".join(f"{r.first}\t{r.last}\t{r.hash}\t{r.count}\t{r.bytes}\n" for r in refs).encode()
        h = self._put_text(text)
        with self._lock:
            self._index_cache[h] = refs
        return h

    # -- reading -------------------------------------------------------------------------------
    def chunks_in_range(self, refs: list[ChunkRef], lo: str, hi: str | None) -> list[ChunkRef]:
        start = bisect.bisect_left(_Lasts(refs), lo) if lo else 0
        out = []
        for r in refs[start:]:
            if hi is not None and r.first >= hi:
                break
            out.append(r)
        return out

    def _read_ahead(self, refs: list[ChunkRef]) -> Iterator[list[Entry]]:
        """The chunks of ``refs`` in order, the next :data:`READ_AHEAD` fetched in parallel (on S3 a
        chunk is a round trip; zlib releases the GIL while it inflates)."""
        pool = self.executor() if self.executor is not None and len(refs) > 1 else None
        if pool is None:
            for r in refs:
                yield self.read_chunk(r.hash)
            return
        futures: deque[Future] = deque()
        it = iter(refs)
        try:
            for r in itertools.islice(it, READ_AHEAD):
                futures.append(pool.submit(self.read_chunk, r.hash))
            while futures:
                entries = futures.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    futures.append(pool.submit(self.read_chunk, nxt.hash))
                yield entries
        finally:
            for f in futures:
                f.cancel()

    def iter_prefix(self, index: str, prefix: str) -> Iterator[Entry]:
        """Entries of files at or below ``prefix`` (a cleaned path), in path order."""
        lo, hi = prefix_range(prefix)
        refs = self.chunks_in_range(self.read_index(index), lo, hi)
        if prefix == "/":
            for entries in self._read_ahead(refs):
                yield from entries
            return
        below = prefix + "/"
        for n, (r, entries) in enumerate(zip(refs, self._read_ahead(refs))):
            if r.first.startswith(below) and r.last.startswith(below):
                yield from entries  # the whole chunk is below the prefix: no per-entry checks
                continue
            start = bisect.bisect_left(entries, (lo,)) if n == 0 else 0
            for e in entries[start:] if start else entries:
                p = e[0]
                if p == prefix or p.startswith(below):
                    yield e
                elif hi is not None and p >= hi:
                    return

    def lookup(self, index: str, path: str) -> Entry | None:
        refs = self.read_index(index)
        i = bisect.bisect_left(_Lasts(refs), path)
        if i >= len(refs) or refs[i].first > path:
            return None
        entries = self.read_chunk(refs[i].hash)
        j = bisect.bisect_left(entries, (path,))
        if j < len(entries) and entries[j][0] == path:
            return entries[j]
        return None

    def stats(self, index: str) -> tuple[int, int]:
        refs = self.read_index(index)
        return sum(r.count for r in refs), sum(r.bytes for r in refs)

    # -- writing -------------------------------------------------------------------------------
    def build(self, entries: Iterable[Entry], executor: Executor | None = None) -> str:
        """Write a manifest from ``entries`` (sorted by path, unique) and return its index hash."""
        w = _ChunkWriter(self, executor)
        last = None
        files: list[str] = []  # earlier paths that are string prefixes of the current one
        for e in entries:
            p = e[0]
            if last is not None and p <= last:
                raise InvalidPath(f"files not sorted by path or not unique at {p!r} (after {last!r})")
            last = p
            # A file cannot also be a directory: any path below file f starts with f + "/" and sorts
            # right after f, while every path that is not a string prefix of p is passed for good.
            while files and not p.startswith(files[-1]):
                files.pop()
            for f in files:
                if p[len(f)] == "/":
                    raise InvalidPath(f"{f} is a file, so {p} cannot be below it: a path is a file or a "
                                      "directory, not both")
            files.append(p)
            w.add(e)
        return self.write_index(w.finish())

    def merge(self, index: str, puts: Mapping[str, tuple[str, int]], deletes: Iterable[str],
              executor: Executor | None = None) -> str:
        """A new manifest = ``index`` minus ``deletes`` (paths; each deletes itself and everything
        below) plus ``puts`` (path → (hash, size), applied after the deletes). Chunks of ``index``
        that no change touches are reused as they are."""
        refs = self.read_index(index)
        deletes = sorted(set(deletes))
        put_items = sorted(puts.items())
        put_keys = [k for k, _ in put_items]
        if not refs:
            return self.build(((p, h, s) for p, (h, s) in put_items), executor)
        firsts = [r.first for r in refs]
        n = len(refs)
        affected = [False] * n

        def chunk_of(path: str) -> int:
            return max(bisect.bisect_right(firsts, path) - 1, 0)

        for k in put_keys:
            affected[chunk_of(k)] = True
        for d in deletes:
            lo, hi = prefix_range(d)
            i = chunk_of(lo)
            while i < n and (hi is None or refs[i].first < hi):
                affected[i] = True
                i += 1
        delete_set = set(deletes)

        w = _ChunkWriter(self, executor)
        for i, r in enumerate(refs):
            if not affected[i]:
                if w.pending:
                    # A carried-over remainder: merge it with this chunk rather than leave it tiny.
                    affected[i] = True
                else:
                    w.add_ref(r)
                    continue
            lo_put = 0 if i == 0 else bisect.bisect_left(put_keys, r.first)
            hi_put = len(put_keys) if i == n - 1 else bisect.bisect_left(put_keys, refs[i + 1].first)
            pi = lo_put
            for e in self.read_chunk(r.hash):
                while pi < hi_put and put_keys[pi] < e[0]:
                    h, s = put_items[pi][1]
                    w.add((put_keys[pi], h, s))
                    pi += 1
                if pi < hi_put and put_keys[pi] == e[0]:
                    h, s = put_items[pi][1]
                    w.add((put_keys[pi], h, s))
                    pi += 1
                    continue
                if not is_deleted(e[0], delete_set):
                    w.add(e)
            while pi < hi_put:
                h, s = put_items[pi][1]
                w.add((put_keys[pi], h, s))
                pi += 1
            if len(w.pending) >= MIN_ENTRIES or i == n - 1:
                w.flush()
        w.flush()
        return self.write_index(w.finish())

    # -- diff ----------------------------------------------------------------------------------
    def diff(self, new_index: str, old_index: str, prefix: str = "/"
             ) -> Iterator[tuple[Entry | None, Entry | None]]:
        """Files that differ between two manifests below ``prefix``: (new, old) pairs, None for a
        side where the file does not exist. Chunks with the same hash on both sides are skipped
        unread."""
        lo, hi = prefix_range(prefix)
        a = _Cursor(self, self.chunks_in_range(self.read_index(new_index), lo, hi))
        b = _Cursor(self, self.chunks_in_range(self.read_index(old_index), lo, hi))
        while True:
            if a.at_chunk_start() and b.at_chunk_start():
                ra, rb = a.current_ref(), b.current_ref()
                if ra is not None and rb is not None and ra.hash == rb.hash:
                    a.skip_chunk()
                    b.skip_chunk()
                    continue
            ea, eb = a.peek(), b.peek()
            if ea is None and eb is None:
                return
            if eb is None or (ea is not None and ea[0] < eb[0]):
                a.advance()
                if under(ea[0], prefix):
                    yield ea, None
            elif ea is None or eb[0] < ea[0]:
                b.advance()
                if under(eb[0], prefix):
                    yield None, eb
            else:
                a.advance()
                b.advance()
                if ea[1] != eb[1] and under(ea[0], prefix):
                    yield ea, eb


class _Lasts:
    """A sequence view of the chunks' last paths, for bisect without building a list."""

    __slots__ = ("refs",)

    def __init__(self, refs: list[ChunkRef]):
        self.refs = refs

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> str:
        return self.refs[i].last


class _Cursor:
    """Walks entries chunk by chunk, knowing when it sits at the start of a chunk."""

    def __init__(self, m: Manifests, refs: list[ChunkRef]):
        self.m, self.refs, self.ci, self.pos = m, refs, 0, 0
        self.entries: list[Entry] | None = None

    def at_chunk_start(self) -> bool:
        return self.pos == 0

    def current_ref(self) -> ChunkRef | None:
        return self.refs[self.ci] if self.ci < len(self.refs) else None

    def skip_chunk(self) -> None:
        self.ci += 1
        self.pos = 0
        self.entries = None

    def peek(self) -> Entry | None:
        if self.ci >= len(self.refs):
            return None
        if self.entries is None:
            self.entries = self.m.read_chunk(self.refs[self.ci].hash)
        return self.entries[self.pos]

    def advance(self) -> None:
        self.pos += 1
        if self.entries is not None and self.pos >= len(self.entries):
            self.skip_chunk()


class _ChunkWriter:
    """Cuts a stream of entries into chunks; uploads them on ``executor`` when given."""

    def __init__(self, m: Manifests, executor: Executor | None):
        self.m, self.executor = m, executor
        self.pending: list[Entry] = []
        self.bytes = 0
        self.refs: list[ChunkRef | Future] = []

    def add(self, e: Entry) -> None:
        self.pending.append(e)
        self.bytes += len(e[0]) + 80
        if is_boundary(e[0]) or len(self.pending) >= MAX_ENTRIES or self.bytes >= MAX_BYTES:
            self.flush()

    def add_ref(self, r: ChunkRef) -> None:
        self.flush()
        self.refs.append(r)

    def flush(self) -> None:
        if not self.pending:
            return
        entries, self.pending, self.bytes = self.pending, [], 0
        if self.executor is not None:
            self.refs.append(self.executor.submit(self.m.write_chunk, entries))
        else:
            self.refs.append(self.m.write_chunk(entries))

    def finish(self) -> list[ChunkRef]:
        self.flush()
        return [r.result() if isinstance(r, Future) else r for r in self.refs]


def fold_dir(entries: Iterable[Entry], prefix: str) -> tuple[int, str, int]:
    """Size, hash and file count of the directory ``prefix`` given the entries below it.

    The hash is sha256 over ``<path relative to the dir>\\0<file hash>\\n`` in path order."""
    h = hashlib.sha256()
    cut = 1 if prefix == "/" else len(prefix) + 1
    size = count = 0
    for p, fh, s in entries:
        h.update(f"{p[cut:]}\0{fh}\n".encode())
        size += s
        count += 1
    return size, h.hexdigest(), count


DirHasher = Callable[[str], str]


def is_deleted(path: str, deletes: set[str]) -> bool:
    """Whether ``path`` is one of ``deletes`` or lies below one of them (``/`` deletes everything)."""
    if not deletes:
        return False
    if "/" in deletes or path in deletes:
        return True
    i = path.find("/", 1)
    while i != -1:
        if path[:i] in deletes:
            return True
        i = path.find("/", i + 1)
    return False
