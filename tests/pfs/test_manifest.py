"""Chunked manifests: merge, range reads and diff agree with a plain dict model (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pach_airflow.pfs import manifest as M
from pach_airflow.pfs.backend import LocalBackend

NAMES = st.sampled_from(["a", "b", "c", "d-e", "d", "x.txt", "z"])
PATHS = st.lists(NAMES, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
# Files all at depth 3, so that no file is also a directory (the store refuses that).
FILES = st.lists(NAMES, min_size=3, max_size=3).map(lambda parts: "/" + "/".join(parts))


@pytest.fixture
def small_chunks(monkeypatch):
    # Tiny chunks so that a few dozen files span many chunks and every boundary case is hit.
    monkeypatch.setattr(M, "BOUNDARY", 4)
    monkeypatch.setattr(M, "MAX_ENTRIES", 6)
    monkeypatch.setattr(M, "MIN_ENTRIES", 2)


def _entries(d):
    return [(p, h, s) for p, (h, s) in sorted(d.items())]


def _apply(base, puts, deletes):
    out = {p: v for p, v in base.items() if not any(p == d or p.startswith(d + "/") or d == "/" for d in deletes)}
    out.update(puts)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.dictionaries(FILES, st.tuples(st.sampled_from(["h1", "h2", "h3"]), st.integers(0, 9)), max_size=40),
       puts=st.dictionaries(FILES, st.tuples(st.sampled_from(["h1", "h4"]), st.integers(0, 9)), max_size=10),
       deletes=st.lists(st.one_of(PATHS, st.just("/")), max_size=3),
       prefix=st.one_of(st.just("/"), PATHS))
def test_merge_diff_and_prefix_match_model(tmp_path_factory, small_chunks, base, puts, deletes, prefix):
    m = M.Manifests(LocalBackend(tmp_path_factory.mktemp("m")))
    base_index = m.build(_entries(base))
    new_index = m.merge(base_index, puts, deletes)
    want = _apply(base, puts, deletes)
    assert list(m.iter_prefix(new_index, "/")) == _entries(want)
    assert m.stats(new_index) == (len(want), sum(s for _, s in want.values()))
    under = {p: v for p, v in want.items() if M.under(p, prefix)}
    assert list(m.iter_prefix(new_index, prefix)) == _entries(under)
    for p in list(want)[:5]:
        assert m.lookup(new_index, p) == (p, *want[p])
    diff = list(m.diff(new_index, base_index, prefix))
    expected = []
    for p in sorted(set(want) | set(base)):
        if not M.under(p, prefix) or want.get(p, (None,))[0] == base.get(p, (None,))[0]:
            continue
        expected.append(((p, *want[p]) if p in want else None, (p, *base[p]) if p in base else None))
    assert diff == expected


def test_file_and_dir_at_one_path_refused(tmp_path):
    from pach_airflow.errors import InvalidPath

    m = M.Manifests(LocalBackend(tmp_path))
    with pytest.raises(InvalidPath):
        m.build([("/a", "h", 1), ("/a-b", "h", 1), ("/a.c/d", "h", 1), ("/a/x", "h", 1)])
    m.build([("/a", "h", 1), ("/a-b", "h", 1), ("/a.c/d", "h", 1), ("/ab/x", "h", 1)])


def test_untouched_chunks_are_reused(tmp_path):
    m = M.Manifests(LocalBackend(tmp_path))
    entries = [(f"/dir/{i:06d}", "h", 1) for i in range(20_000)]
    base = m.build(entries)
    refs = m.read_index(base)
    assert len(refs) > 3
    new = m.merge(base, {"/dir/010000": ("h2", 2)}, [])
    new_refs = m.read_index(new)
    shared = {r.hash for r in refs} & {r.hash for r in new_refs}
    assert len(shared) >= len(refs) - 2  # one chunk rewritten (maybe merged with a neighbour)
    assert [e for e in m.diff(new, base)] == [(("/dir/010000", "h2", 2), ("/dir/010000", "h", 1))]


def test_prefix_listing_reads_only_chunks_under_it(tmp_path):
    from pach_airflow.pfs import open_store

    url = "file://" + str(tmp_path / "store")
    store = open_store(url)
    store.create_repo("r")
    h, size = store.put_blob(b"x")
    store.write_commit("r", "master", [(f"/d{i // 10_000}/f{i:06d}", h, size) for i in range(50_000)])
    fresh = open_store(url)  # empty caches
    reads: list[str] = []
    real_get = fresh.backend.get

    def counting_get(key: str) -> bytes:
        reads.append(key)
        return real_get(key)

    fresh.backend.get = counting_get
    assert len(list(fresh.walk("r", "master", "/d3/f030500"))) == 1
    chunk_reads = [k for k in reads if k.startswith("manifests/")]
    assert len(chunk_reads) == 2  # the index and one chunk, of ~25
    assert len(fresh.manifests.read_index(fresh.inspect_commit("r", "master").manifest)) > 10
