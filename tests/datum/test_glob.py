"""The glob language, checked against ohmyglob's own test vectors and Pachyderm's GlobFile rules."""

from __future__ import annotations

import hashlib
import re

import pytest

from pach_airflow.errors import GlobError
from pach_airflow.glob import clean_glob, compile_glob, glob_to_regex, match_files
from pach_airflow.pfs.info import FileInfo


def _match(pattern: str, text: str, separators: str = "") -> bool:
    return re.match(glob_to_regex(pattern, separators), text) is not None


# (should match, pattern, text, separators) — vectors of ohmyglob's glob_test.go / extglob_test.go,
# which compile without separators unless one is given.
VECTORS = [
    (True, "* ?at * eyes", "my cat has very bright eyes", ""),
    (True, "", "", ""),
    (False, "", "b", ""),
    (True, "*ä", "åä", ""),
    (True, "a.*", "a.b", "."),
    (True, "a.**", "a.b.c", "."),
    (False, "a.*", "a.b.c", "."),
    (False, "*", "a.b.c", "."),
    (True, "**", "a.b.c", "."),
    (False, "?at", "fat", "f"),
    (True, r"\*", "*", ""),
    (True, "[!a]*", "this is a test3", ""),
    (False, "sta?n", "stagnation", ""),
    (True, "{abc,abcd}a", "abcda", ""),
    (True, "{a,ab}{bc,f}", "abc", ""),
    (True, "{*,**}{a,b}", "ab", ""),
    (False, "{*,**}{a,b}", "ac", ""),
    (True, "[a-z]", "c", ""),
    (False, "[a-z]", "C", ""),
    (True, "[[:alpha:]]", "C", ""),
    (False, "[[:alpha:]]", "5", ""),
    (True, "[[:^alpha:]]", ".", ""),
    (True, "[^[:alpha:]]", ".", ""),
    (True, "[[:space:]]", "\t", ""),
    (True, "[[:graph:]]", "!", ""),
    (False, "[![:graph:]]", "!", ""),
    (True, "/{rate,[a-z][a-z][a-z]}*", "/usd", ""),
    (False, "{*.google.*,*.yandex.*}", "yandex.com", "."),
    (True, "*//{,*.}example.com", "http://example.com", ""),
    (False, "*//{,*.}example.com", "http://example.com.net", ""),
    (False, "*/*/*", "foo/bb/aa/rr", "/"),
    (True, "**/**/**", "foo/bb/aa/rr", "/"),
    (True, "*.(a|b)", "a.a.a", ""),
    (False, "*.(a|b)", "a.bb", ""),
    (True, "?(a*|b)", "ax", ""),
    (True, "?@(a|b)*@(c)d", "abcd", ""),
    (True, "(*(a|b\\[)|f*)", "foo", ""),
    (False, "(a+|b)*", "zz", ""),
    (True, "[!/][!/]/../", "ab/../", ""),
    (False, "[a*\\(]*z", "abcx", ""),
    (True, "[a*\\(]*z", "abcz", ""),
    (True, "@(ab|+([^/]))/..?(/)", "ab/../", ""),
    (True, "@(b+(c)d|e*(f)g?|?(h)i@(j|k))", "effgz", ""),
    (False, "@(b+(c)d|e+(f)g?|?(h)i@(j|k))", "egz", ""),
    (True, "@(foo|f|fo)*(f|of+(o))", "foofoofo", ""),
    (True, "*;[1-9]**([0-9])*", "\"MS.FILE;13\"", ""),
    (False, "*(@(a))a@(c)", "baaac", ""),
    (True, "*(*(f)*(o))", "fffooofoooooffoofffooofff", ""),
    (False, "*(*(of*(o)x)o)", "ofoooxoofxoofoooxoofxofo", ""),
    (True, "*(*(of*(o)x)o)", "ofoooxoofxoofoooxoofxooofxofxo", ""),
    (True, "*(0|1|3|5|7|9)", "", ""),
    (False, "*(a|b\\[)", "*(a|b[)", ""),
    (True, "*(fo|foo)", "fofoofoofofoo", ""),
    (False, "*(oxf+(ox))", "oxfoxfox", ""),
    (False, "+()c", "abc", ""),
    (True, "+([0-7])", "0377", ""),
    (False, "+([0-7])", "09", ""),
    (True, "+(a|b\\[)*", "b[c", ""),
    (False, "a??b", "aab", ""),
    (True, "a[b*(foo|bar)]d", "abd", ""),
    (False, "a[b*(foo|bar)]d", "abc", ""),
    (True, "a\\(*b", "a((((b", ""),
    (True, "ab**(e|f)g", "abcfefg", ""),
    (False, "ab**(e|f)g", "abef", ""),
    (True, "ab***ef", "abef", ""),
    (False, "para?([345]|99)1", "para381", ""),
    (True, "para@(chute|graph)", "paragraph", ""),
]


@pytest.mark.parametrize("should, pattern, text, seps", VECTORS)
def test_ohmyglob_vectors(should, pattern, text, seps):
    assert _match(pattern, text, seps) is should


@pytest.mark.parametrize("pattern, text, groups", [
    ("test/(a|b)/x.go", "test/b/x.go", ["b"]),
    ("test/a*(a|b)/x.go", "test/aba/x.go", ["ba"]),
    ("test/a*(a|b)/x.go", "test/a/x.go", [""]),
    ("test/+(a|b)/x.go", "test/aba/x.go", ["aba"]),
    ("test/a?(a|b)/x.go", "test/a/x.go", [""]),
    ("test/!(a|b)/x.go", "test/x/x.go", ["x"]),
    ("test/a*(a|b)/*(*).go", "test/aaaa/x.go", ["aaa", "x"]),
    ("test*(/?(+(a|b)/*.go))", "test/a/x.go", ["/a/x.go", "a/x.go", "a"]),
])
def test_captures(pattern, text, groups):
    m = re.match(glob_to_regex(pattern, ""), text)
    assert m is not None
    assert [g or "" for g in m.groups()] == groups


@pytest.mark.parametrize("pattern, path, template, expected", [
    ("/name=(*)", "/name=adele", "$1", "adele"),
    ("/name=(*)", "/n[.ipxi", "$1", ""),
    ("/name=(*)", "/name=adele", "${1}1", "adele1"),
    ("/name=(*)", "/name=adele", "$$1", "$1"),
    ("/name=(*)", "/name=adele", "$2|$x|${1", "|$x|${1"),
    ("/(((((((((??)))))))))*(a|b)", "/xfbaaaababbbabaa", "$10", "baaaababbbabaa"),
    ("/name=(*)/year=(*)/(*).dat", "/name=adele/year=2016/photos.dat", "$3 of $1 from $2", "photos of adele from 2016"),
    ("/name=(*)/year=(*)/(*).dat", "/name=adele/year=2016/photos.dat", "$0", "/name=adele/year=2016/photos.dat"),
    ("/name=!(adele)/year=(2?1(?))/(*).dat", "/name=roxanne/year=2514/puzzle.dat",
     "$1 from the $3th year, a $4", "roxanne from the 4th year, a puzzle"),
    ("/(*)", "/dir/", "$1", "dir"),  # directory paths lose their trailing slash first
    ("/foo(?)(?)", "/foo12", "$01", ""),  # leading zeros are refused, as in Go
])
def test_replace(pattern, path, template, expected):
    assert compile_glob(pattern).replace(path, template) == expected


@pytest.mark.parametrize("raw, cleaned, prefix", [
    ("*", "/*", "/"),
    ("/(*)/", "/(*)", "/"),
    ("", "/", "/"),
    ("/", "/", "/"),
    ("dir2/dir3/*", "/dir2/dir3/*", "/dir2/dir3"),
    ("//a/./b/../c*", "/a/c*", "/a"),
    ("/foo*2", "/foo*2", "/"),
    ("/a/b/file", "/a/b/file", "/a/b"),
    ("/a\\*b/c", "/a\\*b/c", "/"),
    ("/a/../h/*", "/h/*", "/h"),
    ("/../../h/*", "/h/*", "/h"),
    ("../h/*", "/../h/*", "/../h"),  # path.Clean first, then the "/": the '..' stays (pfsfile.CleanPath)
    ("a/..", "/", "/"),
])
def test_cleaning_and_literal_prefix(raw, cleaned, prefix):
    assert clean_glob(raw) == cleaned
    g = compile_glob(raw)
    assert g.pattern == cleaned
    assert g.literal_prefix == prefix


@pytest.mark.parametrize("bad", ["/[abc", "/^(a)", "/[]"])
def test_bad_globs_raise_glob_error_naming_the_pattern(bad):
    with pytest.raises(GlobError, match=re.escape(repr(bad))):
        compile_glob(bad)


def _tree(paths: list[str]) -> list[FileInfo]:
    return [FileInfo(p, "file", len(p), hashlib.sha256(p.encode()).hexdigest()) for p in sorted(paths)]


GLOB_FILE3 = ["/dir1/file1.1", "/dir1/file1.2", "/dir2/file2.1", "/dir2/file2.2"]


def _matches(paths: list[str], pattern: str) -> list[str]:
    g = compile_glob(pattern)
    base = g.literal_prefix.rstrip("/") + "/"
    files = [f for f in _tree(paths) if f.path.startswith(base)]
    return [m.path for m in match_files(files, g)]


@pytest.mark.parametrize("pattern, expected", [
    ("/", ["/"]),
    ("/*", ["/dir1/", "/dir2/"]),
    ("/*/*", GLOB_FILE3),
    ("/**", ["/dir1/", "/dir1/file1.1", "/dir1/file1.2", "/dir2/", "/dir2/file2.1", "/dir2/file2.2"]),
    ("**.2", ["/dir1/file1.2", "/dir2/file2.2"]),
    ("/dir1/*", ["/dir1/file1.1", "/dir1/file1.2"]),
    ("/dir1", ["/dir1/"]),
    ("/dir1/", ["/dir1/"]),
    ("!(**)", []),
    ("/nothing/*", []),
])
def test_glob_file3(pattern, expected):
    """TestGlobFile3: directories match too, reported with a trailing '/', in path order."""
    assert _matches(GLOB_FILE3, pattern) == expected


def test_matches_come_out_in_lexicographic_order_once():
    paths = ["/a-b", "/a/x", "/a/y/z", "/a/y/zz", "/a0", "/b"]
    assert _matches(paths, "/**") == ["/a-b", "/a/", "/a/x", "/a/y/", "/a/y/z", "/a/y/zz", "/a0", "/b"]


def test_directory_match_carries_subtree_size_and_tree_hash():
    files = _tree(["/d/a", "/d/sub/b", "/e"])
    (d,) = [m for m in match_files(files, compile_glob("/d")) if m.type == "dir"]
    assert d.path == "/d/" and d.size == len("/d/a") + len("/d/sub/b")
    # The store's tree hash: sha256 over "<path relative to the dir>\0<file hash>\n" in path order
    h = hashlib.sha256()
    for f in files[:2]:
        h.update(f"{f.path[len('/d/'):]}\0{f.hash}\n".encode())
    assert d.hash == h.hexdigest()
    changed = [files[0], FileInfo("/d/sub/b", "file", 9, "other"), files[2]]
    (d2,) = [m for m in match_files(changed, compile_glob("/d")) if m.type == "dir"]
    assert d2.hash != d.hash


def test_empty_commit_has_no_matches_even_for_root():
    assert list(match_files([], compile_glob("/"))) == []
    assert list(match_files([], compile_glob("/**"))) == []


def test_compiled_once():
    assert compile_glob("/x/(*)") is compile_glob("/x/(*)")


def test_relative_glob_above_root_matches_nothing():
    g = compile_glob("../h/*")
    assert g.above_root
    assert not g.match("/h/k.csv") and not compile_glob("/../h/*").above_root


@pytest.mark.parametrize("pattern, path, matches", [
    ("/g\\.txt", "/g.txt", False),  # the raw prefix "/g\\.txt" starts no stored path (GlobLiteralPrefix)
    ("/g.txt", "/g.txt", True),
    ("/*\\.txt", "/g.txt", True),  # an escape after the first glob character is only the regex's
    ("/a\\ b*", "/a b.txt", False),
    # raw prefix: "/" and four backslashes; regex: "/", two backslashes, [^/]*
    ("/\\\\\\\\*", "/\\\\\\\\x", True),
    ("/\\\\\\\\*", "/\\\\x", False),
])
def test_escape_in_literal_prefix_follows_globfile(pattern, path, matches):
    assert compile_glob(pattern).match(path) is matches
