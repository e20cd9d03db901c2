"""Names, paths and ``repo@branch:/path`` parsing, as Pachyderm checks them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pach_airflow.errors import InvalidName, InvalidPath
from pach_airflow.pfs import paths as P


@pytest.mark.parametrize("name", ["images", "a", "A_b-9", "x" * 63])
def test_valid_repo_names(name):
    assert P.validate_repo_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "a/b", "a.b", "a@b", "répo", "x" * 64, "a\x00"])
def test_invalid_repo_names(name):
    with pytest.raises(InvalidName):
        P.validate_repo_name(name)


def test_branch_names():
    assert P.validate_branch_name("feature-1_x") == "feature-1_x"
    for bad in ("", "a^b", "a.b", "a=b", "0123456789abcdef0123456789abcdef"):
        with pytest.raises(InvalidName):
            P.validate_branch_name(bad)


@pytest.mark.parametrize("raw,clean", [("", "/"), ("/", "/"), ("a", "/a"), ("/a//b/", "/a/b"), ("./a/./b", "/a/b")])
def test_clean_path(raw, clean):
    assert P.clean_path(raw) == clean


@pytest.mark.parametrize("bad", ["/a/../b", "..", "/a\x00b", "/a\nb"])
def test_clean_path_refuses(bad):
    with pytest.raises(InvalidPath):
        P.clean_path(bad)


@pytest.mark.parametrize("bad", ["/a*", "/a?", "/[x]", "/{a,b}", "/a!", "/(a)", "/a@b", "/a+b", "/a^b", "/caf\u00e9",
                                 "/", "/./a", "/a/.."])
def test_write_paths_refuse_what_pachyderm_refuses(bad):
    with pytest.raises(InvalidPath):
        P.validate_path_for_write(bad)


def test_write_path_ok():
    assert P.validate_output_path("dir/file name-1.txt") == "/dir/file name-1.txt"


def test_parse_file_ref():
    assert P.parse_file_ref("images@master:/a/b") == ("images", "master", "/a/b")
    assert P.parse_file_ref("images@master") == ("images", "master", "/")
    assert P.parse_file_ref("images") == ("images", "master", "/")
    assert P.parse_file_ref("images:/x") == ("images", "master", "/x")
    cid = "18eb4f2a00000000aaaaaaaaaaaaaaaa"
    assert P.parse_file_ref(f"images@{cid}:/x") == ("images", cid, "/x")
    assert P.parse_file_ref("images@master^2:x") == ("images", "master^2", "/x")
    assert P.parse_file_ref(f"images@master={cid}") == ("images", f"master={cid}", "/")
    with pytest.raises(InvalidPath):
        P.parse_file_ref("images@master", require_path=True)
    with pytest.raises(InvalidName):
        P.parse_file_ref("bad repo@master")


def test_parse_ref_and_ancestry():
    cid = "18eb4f2a00000000aaaaaaaaaaaaaaaa"
    assert P.parse_ref("master") == ("master", None, 0)
    assert P.parse_ref(cid) == (None, cid, 0)
    assert P.parse_ref(f"{cid}^") == (None, cid, 1)
    assert P.parse_ref("master^") == ("master", None, 1)
    assert P.parse_ref("master^^^") == ("master", None, 3)
    assert P.parse_ref("master~2") == ("master", None, 2)
    assert P.parse_ref("master.1") == ("master", None, -1)
    with pytest.raises(InvalidName):
        P.parse_ref("master^~")


def test_commit_ids_sort_by_time():
    from pach_airflow.pfs import new_commit_id

    ids = [new_commit_id() for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000 and all(P.is_commit_id(i) for i in ids)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from([chr(c) for c in range(32, 127)] + ["/", "/", ".", "\x00", "\t", "\u00e9"]),
               max_size=10))
def test_fast_path_check_agrees_with_the_full_check(monkeypatch_free_text):
    """validate_path_for_write accepts clean paths through one regex; it must agree with the full rule."""
    import re

    text = monkeypatch_free_text
    fast = P._CLEAN_STORABLE.fullmatch(text) is not None
    saved = P._CLEAN_STORABLE
    P._CLEAN_STORABLE = re.compile(r"(?!)")  # off: the full rule only
    try:
        full = P.validate_path_for_write(text) == text
    except InvalidPath:
        full = False
    finally:
        P._CLEAN_STORABLE = saved
    assert fast == full


def test_public_api_is_honest():
    from pach_airflow import pfs

    assert sorted(pfs.__all__) == sorted(set(pfs.__all__))
    for name in pfs.__all__:
        assert getattr(pfs, name) is not None, name
    for method in ("create_repo", "inspect_repo", "list_repos", "delete_repo", "create_branch", "inspect_branch",
                   "list_branches", "delete_branch", "new_commit_id", "inspect_commit", "list_commits",
                   "subscribe_commits", "open_commit", "start_commit", "put_file", "delete_file", "finish_commit",
                   "write_commit", "walk", "list_file", "inspect_file", "open_file", "read_file", "diff_file",
                   "put_blob", "has_blob", "open_blob", "get_blob_to", "put_record", "get_record", "list_records",
                   "delete_record", "update_record", "put_bytes", "get_bytes", "dir_hash"):
        assert callable(getattr(pfs.Store, method)), method  # the contract in docs/architecture.md
