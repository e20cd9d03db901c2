"""Writes ``tests/conformance/cases.json``: conformance cases derived from Pachyderm's own tests.

Run ``.venv/bin/python tests/conformance/derive_cases.py [--ohmyglob DIR]`` to regenerate; the JSON file
is what the tests read (and what reviewers diff), this script only records how each case was derived.

Three families, each case with ``source`` naming the upstream test:

- **pachyderm**: transcriptions of ``iterator_test.go``, ``server_test.go`` (GlobFile*, PathRange) and
  ``pachyderm_test.go`` (Join/Group/Union/ListDatum/env/skip/tries/...) at pachyderm@e237475, the same
  snapshot the public cases use. Expected values are the tests' literals; where a test only counts,
  the paths are spelled out from its file layout (``derived: true`` and a note).
- **semantics**: cases for rules the reference states with a source line but no upstream test covers
  directly (path cleaning of globs, ``/`` vs ``/*`` vs ``/**``, outer joins of three inputs, joins and
  groups over compound inputs, special characters). ``derived: true``; the note cites the code.
- **ohmyglob**: every ``glob(should, pattern, fixture)`` row of ``pachyderm/ohmyglob@d5b4777``'s
  ``glob_test.go`` / ``extglob_test.go`` that can be stored in a Pachyderm repo, grouped by pattern: one
  repo holding the pattern's fixtures as top-level files ``/<fixture>``, the glob ``/<pattern>``, and the
  fixtures the test says match as the expected datums. Prefixing ``/`` to both sides changes no result
  (the compiled regex is anchored and the prefix is literal text). Rows are left out when the fixture
  cannot be a Pachyderm path (``storage.ValidateFilename``: printable ASCII, none of ``*?[]{}!()@+^``,
  no ``.``/``..`` parts), holds a ``/`` while the test used no separator (Pachyderm always uses ``/``),
  or uses another separator; and when ``CleanPath`` would rewrite ``/<pattern>``. The capture and
  replace tables become join cases whose second repo holds the expected key as a file name.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import pathlib
import re
import subprocess
from collections import OrderedDict

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "cases.json"
PACH = "pachyderm/pachyderm@e237475"
OMG = "pachyderm/ohmyglob@d5b4777"
ITER = f"{PACH}:src/server/worker/datum/iterator_test.go"
SRV = f"{PACH}:src/server/pfs/server/testing/server_test.go"
PT = f"{PACH}:src/server/pachyderm_test.go"

GLOB_CHARS = set("*?[]{}!()@+^")


def pfs(name: str, repo: str, glob: str, **kw) -> dict:
    return {"pfs": {"name": name, "repo": repo, "branch": "master", "glob": glob, **kw}}


def files(paths, content="x") -> list[dict]:
    return [{"path": p, "content": content(p) if callable(content) else content} for p in paths]


def case(cid, source, input_files, input_spec, expected_datums, notes="", derived=False, **extra) -> dict:
    c = {"id": cid, "kind": extra.pop("kind", "datum"), "source": source, "input_files": input_files,
         "input_spec": input_spec}
    if expected_datums is not None:
        c["expected_datums"] = [[list(p) for p in d] for d in expected_datums]
        c["expected_count"] = len(expected_datums)
    c.update(extra)
    c["notes"] = notes
    c["derived"] = derived
    c["order_sensitive"] = False
    return c


def singles(name, paths):
    return [[(name, p)] for p in paths]


# ------------------------------------------------------------------------------------------ fixtures

FOO = [f"/foo{i}" for i in range(50)]
FOO_FILES = {"data": files(FOO, "input")}
GF = ([f"/file{i}" for i in range(100)] + [f"/dir1/file{i}" for i in range(100)]
      + [f"/dir2/dir3/file{i}" for i in range(100)])
GF_FILES = {"repo": files(GF, lambda p: {"dir1": "2", "dir2": "3"}.get(p.split("/")[1], "1"))}
GF3 = ["/dir1/file1.1", "/dir1/file1.2", "/dir2/file2.1", "/dir2/file2.2"]
GF3_FILES = {"repo": files(GF3, "")}
PR = [f"/dir{i}/file{j}" for i in range(3) for j in range(3)]
PR_FILES = {"repo": files(PR, "")}


def b4(i: int) -> str:
    """Go's ``fmt.Sprintf("%4b", i)``: binary, right-aligned, space-padded to 4."""
    return format(i, "b").rjust(4)


def pachyderm_cases() -> list[dict]:
    cs = []
    in1 = pfs("in1", "data", "/foo?1")
    in2 = pfs("in2", "data", "/foo*2")
    q1 = ["/foo11", "/foo21", "/foo31", "/foo41"]
    cs.append(case("iter-basic-question-mark", f"{ITER} TestIterators/Basic (pfs1)", FOO_FILES,
                   pfs("data", "data", "/foo?1"), singles("data", q1),
                   "'?' is exactly one non-'/' character."))
    zero = pfs("zero", "data", "!(**)")
    in6 = {"cross": [{"union": [pfs("u", "data", "/foo?1"), pfs("u", "data", "/foo*2")]}, zero,
                     pfs("in2b", "data", "/foo*2"), {"cross": [in1, in2]}]}
    cs.append(case("iter-nested-empty-cross", f"{ITER} TestIterators/NestedEmptyCross", FOO_FILES,
                   {"cross": [in6, pfs("in1c", "data", "/foo?1")]}, [],
                   "A cross nesting an empty cross is empty. Distinct names replace the test's shared "
                   "default names (the iterator test skips validation)."))
    outer = [[("a", "/foo10")], [("a", "/foo11"), ("b", "/foo11")], [("a", "/foo12"), ("b", "/foo21")],
             [("a", "/foo13"), ("b", "/foo31")], [("a", "/foo14"), ("b", "/foo41")]]
    outer += [[("a", f"/foo1{i}")] for i in range(5, 10)]
    cs.append(case("iter-outer-join", f"{ITER} TestIterators/OuterJoin", FOO_FILES,
                   {"join": [pfs("a", "data", "/foo1(?)", join_on="$1", outer_join=True),
                             pfs("b", "data", "/foo(?)1", join_on="$1", outer_join=True)]}, outer,
                   "Both sides outer: keys 0 and 5-9 exist only on side a and give single-input datums."))
    g2 = [[("g2", f"/foo{t}0") for t in range(1, 5)]]
    for k in range(1, 5):
        g2.append([("g1", f"/foo{k}{j}") for j in range(10)] + [("g2", f"/foo{t}{k}") for t in range(1, 5)])
    for k in range(5, 10):
        g2.append([("g2", f"/foo{t}{k}") for t in range(1, 5)])
    cs.append(case("iter-group-doubles", f"{ITER} TestIterators/GroupDoubles", FOO_FILES,
                   {"group": [pfs("g1", "data", "/foo(?)(?)", group_by="$1"),
                              pfs("g2", "data", "/foo(?)(?)", group_by="$2")]}, g2,
                   "Every key seen in any child is one datum holding all files of all children with "
                   "that key; a file can appear twice under two input names."))
    two_digit = [f"/foo{i}" for i in range(10, 50)]
    ug = [[("grouped", f"/foo{t}{k}") for t in range(1, 5)] for k in range(10)] + singles("plain", two_digit)
    cs.append(case("iter-union-group", f"{ITER} TestIterators/UnionGroup", FOO_FILES,
                   {"union": [pfs("plain", "data", "/foo(?)(?)"),
                              {"group": [pfs("grouped", "data", "/foo(?)(?)", group_by="$2")]}]}, ug,
                   "Union of 40 single-file datums and 10 groups."))
    cs.append(case("iter-s3-only-cross", f"{ITER} TestIterators/S3OnlyCrossUnionJoin", FOO_FILES,
                   {"cross": [pfs(n, "data", "/", s3=True) for n in ("s1", "s2", "s3")]},
                   [[("s1", "/"), ("s2", "/"), ("s3", "/")]],
                   "Each s3 input is one datum '/'; the cross of three is one datum."))
    slash = {"r0": files([f"/foo-{j}" for j in range(10)], "bar"),
             "r1": files([f"/foo-{j}" for j in range(10)], "bar")}
    cs.append(case("iter-join-trailing-slash", f"{ITER} TestJoinTrailingSlash (with trailing slashes)", slash,
                   {"join": [pfs("r0", "r0", "/(*)/", join_on="$1"), pfs("r1", "r1", "/(*)/", join_on="$1")]},
                   [[("r0", f"/foo-{j}"), ("r1", f"/foo-{j}")] for j in range(10)],
                   "The glob is cleaned before matching and capture extraction (issue #5365)."))

    # server_test.go
    def gf(cid, pattern, want, test, derived=True, note=""):
        cs.append(case(cid, f"{SRV} {test}", GF_FILES, pfs("repo", "repo", pattern), singles("repo", want),
                       note or "The test asserts the count; the paths are spelled out from the layout "
                       "(file<i>, dir1/file<i>, dir2/dir3/file<i>, i < 100).", derived))
    gf("globfile-star", "*", [f"/file{i}" for i in range(100)] + ["/dir1/", "/dir2/"], "TestGlobFile ('*': 102)")
    gf("globfile-dir1-star", "dir1/*", [f"/dir1/file{i}" for i in range(100)], "TestGlobFile ('dir1/*': 100)")
    gf("globfile-star-slash-star", "*/*", [f"/dir1/file{i}" for i in range(100)] + ["/dir2/dir3/"],
       "TestGlobFile ('*/*': 101)")
    gf("globfile-dir3-file1-question", "dir2/dir3/file1?", [f"/dir2/dir3/file1{i}" for i in range(10)],
       "TestGlobFile (GetFileTAR 'dir2/dir3/file1?': 10 bytes)")
    gf("globfile-doublestar-file1", "**file1", ["/file1", "/dir1/file1", "/dir2/dir3/file1"],
       "TestGlobFile (GetFileTAR '**file1': contents 1, 2 and 3)")
    gf("globfile-dir-question", "dir?", ["/dir1/", "/dir2/"], "TestGlobFile (GetFileTAR 'dir?')")
    gf("globfile-empty-pattern", "", ["/"], "TestGlobFile (GetFileTAR '')",
       note="The empty pattern cleans to '/', the whole repo. A pipeline refuses glob '' (api_server.go:157 "
       "'input must specify a glob'), so this case runs through 'glob file' only.")
    cs[-1]["via"] = "glob file"
    cs.append(case("globfile-deleted-repo-doublestar", f"{SRV} TestGlobFile (after DeleteFile '/': '**' -> 0)",
                   GF_FILES, pfs("repo", "repo", "**"), [],
                   "After deleting '/', the commit has no files and no directories: zero datums.",
                   expected={"steps": [{"commit": {"repo": [{"delete": "/"}]}}]}))
    cs.append(case("globfile3-doublestar-suffix", f"{SRV} TestGlobFile3 ('**.2')", GF3_FILES,
                   pfs("repo", "repo", "**.2"), singles("repo", ["/dir1/file1.2", "/dir2/file2.2"])))
    cs.append(case("globfile3-top-level", f"{SRV} TestGlobFile3 ('/*')", GF3_FILES,
                   pfs("repo", "repo", "/*"), singles("repo", ["/dir1/", "/dir2/"]),
                   "Directories match and are reported with a trailing '/'."))
    pr = [p for i in range(3) for p in [f"/dir{i}/"] + [f"/dir{i}/file{j}" for j in range(3)]]
    cs.append(case("pathrange-doublestar", f"{SRV} TestPathRange ('**' over the whole range)", PR_FILES,
                   pfs("repo", "repo", "**"), singles("repo", pr),
                   "'**' yields every directory and every file.", True))
    cs.append(case("pathrange-directory", f"{SRV} TestPathRangeDirectory", {"repo": files(["/dir/file-2"], "")},
                   pfs("repo", "repo", "**"), singles("repo", ["/dir/", "/dir/file-2"]),
                   "The test cuts the range before the file and sees '/dir/'; without a range '**' also "
                   "gives the file.", True))
    g2 = pfs("repo", "repo", "/1*")
    cs.append(case("globfile2-prefix-digits", f"{SRV} TestGlobFile2", {"repo": files([f"/{i}" for i in range(100)],
                   lambda p: p)}, g2, singles("repo", ["/1"] + [f"/1{i}" for i in range(10)])))

    # pachyderm_test.go
    jd = {"r0": files(["/dir-01/foo"], "foo"), "r1": files(["/dir-10/bar"], "bar")}
    cs.append(case("join-directories", f"{PT} TestJoinInput (directory join)", jd,
                   {"join": [pfs("r0", "r0", "/dir-(?)(?)", join_on="$2"), pfs("r1", "r1", "/dir-(?)(?)", join_on="$1")]},
                   [[("r0", "/dir-01/"), ("r1", "/dir-10/")]],
                   "Directories join by their captures; the test's outputs /bar and /foo come from one datum.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp -r /pfs/r0/*/. /pfs/out", "cp -r /pfs/r1/*/. /pfs/out"]},
                             "job_state": "JOB_SUCCESS", "output": {"/bar": "bar", "/foo": "foo"}}))
    gb = {"repo": files([f"/file.{b4(i)}" for i in range(16)], lambda p: "")}
    exp = [["/file.   0", "/file.   1"],
           ["/file.  10", "/file.  11", "/file. 110", "/file. 111", "/file.1010", "/file.1011", "/file.1110", "/file.1111"],
           ["/file. 100", "/file. 101", "/file.1000", "/file.1001", "/file.1100", "/file.1101"]]
    cs.append(case("group-basic-binary-names", f"{PT} TestGroupInput/Basic", gb,
                   {"group": [pfs("repo", "repo", "/file.(?)(?)(?)(?)", group_by="$3")]},
                   [[("repo", p) for p in d] for d in exp],
                   "Names are Go's %4b (space padded); grouped by the third character (space, 0 or 1)."))
    r2 = {f"r{r}": files([f"/file-{r}.{b4(i)}" for i in range(16)], "") for r in range(2)}
    combo = [[("r0", "/file-0.1001"), ("r0", "/file-0.1101"), ("r1", "/file-1.1001"), ("r1", "/file-1.1011")],
             [("r0", "/file-0.1011"), ("r0", "/file-0.1111"), ("r1", "/file-1.1101"), ("r1", "/file-1.1111")]]
    cs.append(case("group-join-combo", f"{PT} TestGroupInput/GroupJoinCombo", r2,
                   {"group": [{"join": [
                       pfs("r0", "r0", "/file-?.(?)(?)(?)(?)", join_on="$1$2$3$4", group_by="$3"),
                       pfs("r1", "r1", "/file-?.(?)(?)(?)(?)", join_on="$4$3$2$1", group_by="$2")]}]},
                   combo, "Join pairs reversed names (4 pairs), then the group regroups their files: 2 groups of 4."))
    four = {f"r{i}": files(["/file-0", "/file-1"], lambda p: p[-1]) for i in range(4)}
    cs.append(case("union-alias-same-name", f"{PT} TestUnionInput/union alias", four,
                   {"union": [pfs("in", f"r{i}", "/*") for i in range(4)]},
                   [[("in", f"/file-{j}")] for i in range(4) for j in range(2)],
                   "Union branches may share a name; 8 datums, each staged under /pfs/in. Datums from "
                   "different repos with the same path are different datums (the repo is in the datum id).",
                   kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/in/* /pfs/out/$PACH_DATUM_ID"]},
                             "job_state": "JOB_SUCCESS", "output_file_count": 8}))
    ld = {"r1": files([f"/file-{i}" for i in range(5)], "foo"), "r2": files([f"/file-{i}" for i in range(5)], "foo")}
    cs.append(case("list-datum-cross", f"{PT} TestListDatum", ld,
                   {"cross": [pfs("r1", "r1", "/*"), pfs("r2", "r2", "/*")]},
                   [[("r1", f"/file-{i}"), ("r2", f"/file-{j}")] for i in range(5) for j in range(5)],
                   "ListDatum over an input spec: 5 x 5 = 25.", True))
    gbe = {"repo": files(["/a-1", "/a-2", "/b-1", "/b-2"], "foo")}
    cs.append(case("group-env-var", f"{PT} TestPipelineEnvVarGroupBy", gbe,
                   {"group": [pfs("repo", "repo", "/(*)-*", group_by="$1")]},
                   [[("repo", "/a-1"), ("repo", "/a-2")], [("repo", "/b-1"), ("repo", "/b-2")]],
                   "PACH_DATUM_<name>_GROUP_BY holds the datum's group key.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["touch /pfs/out/$PACH_DATUM_repo_GROUP_BY"]},
                             "job_state": "JOB_SUCCESS", "output_files": ["/a", "/b"]}))
    alias = {"data": files([f"/file-{i}" for i in range(10)], lambda p: p.rsplit("-", 1)[1])}
    cs.append(case("env-var-alias", f"{PT} TestPipelineEnvVarAlias", alias, pfs("data", "data", "/*"),
                   singles("data", [f"/file-{i}" for i in range(10)]),
                   "$<input name> is the staged path of the datum's file.", kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["env", "cp $data /pfs/out/"]},
                             "job_state": "JOB_SUCCESS",
                             "output": {f"/file-{i}": str(i) for i in range(10)}}))
    return cs


# -------------------------------------------------------------------------------------- job cases

def job_cases() -> list[dict]:
    cs = []
    one = {"data": files(["/file"], "foo")}
    cs.append(case("job-datum-tries", f"{PT} TestDatumTries", one, pfs("data", "data", "/"),
                   [[("data", "/")]],
                   "cmd 'unknown' fails every attempt; datum_tries 5 means 5 attempts. Pachyderm logs "
                   "'errored running user code' once per attempt; we count attempts with a line the "
                   "user code prints each time it runs.", True, kind="job",
                   expected={"transform": {"cmd": ["sh", "-c", "echo attempt-marker; exit 1"]},
                             "spec": {"datum_tries": 5}, "job_state": "JOB_FAILURE",
                             "job": {"data_failed": 1, "data_processed": 0},
                             "logs_count": {"attempt-marker": 5},
                             "datum_states": {"/": "FAILED"}}))
    cs.append(case("job-datum-tries-literal", f"{PT} TestDatumTries", one, pfs("data", "data", "/"),
                   [[("data", "/")]],
                   "The test literally: cmd 'unknown', datum_tries 5, five 'errored running user code' log lines.",
                   False, kind="job",
                   expected={"transform": {"cmd": ["unknown"]}, "spec": {"datum_tries": 5},
                             "job_state": "JOB_FAILURE", "logs_count": {"errored running user code": 5}}))
    cs.append(case("job-datum-tries-default", f"{PT} TestDatumTries + defaults.go (datum_tries 3)", one,
                   pfs("data", "data", "/"), [[("data", "/")]],
                   "datum_tries defaults to 3 (src/server/pps/server/defaults.go; transform/worker.go "
                   "WithRetry(tries-1)).", True, kind="job",
                   expected={"transform": {"cmd": ["sh", "-c", "echo attempt-marker; exit 1"]},
                             "job_state": "JOB_FAILURE", "logs_count": {"attempt-marker": 3}}))
    cs.append(case("job-accept-return-code-other-code", f"{PT} TestAcceptReturnCode (exit code not listed)",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "Only listed exit codes count as success: exit 2 with accept_return_code [1] fails "
                   "(driver.go:415-425).", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["exit 2"], "accept_return_code": [1]},
                             "spec": {"datum_tries": 1}, "job_state": "JOB_FAILURE",
                             "datum_states": {"/file": "FAILED"}}))
    cs.append(case("job-accept-return-code-keeps-output", f"{PT} TestAcceptReturnCode",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "An accepted non-zero exit is a successful datum: its /pfs/out is uploaded.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/file /pfs/out/file", "exit 3"],
                                           "accept_return_code": [1, 3]},
                             "job_state": "JOB_SUCCESS", "output": {"/file": "foo"},
                             "datum_states": {"/file": "SUCCESS"}}))
    three = {"data": files(["/file1", "/file2", "/file3"], lambda p: p[1:])}
    cs.append(case("job-err-cmd-all-recovered", f"{PT} TestPipelineErrorHandling/ErrCmd (err_cmd true)", three,
                   pfs("data", "data", "/*"), singles("data", ["/file1", "/file2", "/file3"]),
                   "cmd fails on file2 and file3, err_cmd 'true' recovers both: the job succeeds, "
                   "recovered datums upload nothing.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/* /pfs/out/",
                                                                    "[ -e /pfs/data/file1 ]"],
                                           "err_cmd": ["true"]},
                             "job_state": "JOB_SUCCESS",
                             "job": {"data_processed": 1, "data_recovered": 2, "data_failed": 0},
                             "output": {"/file1": "file1"},
                             "datum_states": {"/file1": "SUCCESS", "/file2": "RECOVERED", "/file3": "RECOVERED"}}))
    cs.append(case("job-recovered-not-skipped", f"{PT} TestPipelineErrorHandling (recovered datums rerun)", three,
                   pfs("data", "data", "/*"), singles("data", ["/file1", "/file2", "/file3"]),
                   "A RECOVERED datum is not skipped by the next job (only PROCESSED ones are); file1 "
                   "is skipped.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["[ -e /pfs/data/file1 ]"], "err_cmd": ["true"]},
                             "steps": [{"job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 1, "data_recovered": 2}},
                                       {"rerun": True, "job_state": "JOB_SUCCESS",
                                        "job": {"data_skipped": 1, "data_recovered": 2, "data_processed": 0}}]}))
    cs.append(case("job-failed-job-not-a-base", f"{PT} TestPipelineErrorHandling (DataSkipped == 0)", three,
                   pfs("data", "data", "/*"), singles("data", ["/file1", "/file2", "/file3"]),
                   "After a failed job the next job reprocesses the datums that succeeded in it: the "
                   "skip base is the last successful job (pending_job.go load()).", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/* /pfs/out/", "[ -e /pfs/data/file1 ]"]},
                             "spec": {"datum_tries": 1},
                             "steps": [{"job_state": "JOB_FAILURE", "job": {"data_processed": 1, "data_failed": 2}},
                                       {"update_transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/* /pfs/out/"]},
                                        "job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 3, "data_skipped": 0},
                                        "output": {"/file1": "file1", "/file2": "file2", "/file3": "file3"}}]}))
    cs.append(case("job-skipped-datums-three-commits", f"{PT} TestSkippedDatums", {"data": []},
                   pfs("data", "data", "/*"), singles("data", ["/file", "/file2", "/file3"]),
                   "Each new file is one new datum; old datums are skipped and their outputs stay.", True,
                   kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/* /pfs/out/"]},
                             "steps": [{"commit": {"data": [{"put": "/file", "content": "foo\n"}]},
                                        "job": {"data_processed": 1, "data_skipped": 0, "data_total": 1}},
                                       {"commit": {"data": [{"put": "/file2", "content": "bar\n"}]},
                                        "job": {"data_processed": 1, "data_skipped": 1, "data_total": 2}},
                                       {"commit": {"data": [{"put": "/file3", "content": "baz\n"}]},
                                        "job": {"data_processed": 1, "data_skipped": 2, "data_total": 3},
                                        "datum_states": {"/file": "SKIPPED", "/file2": "SKIPPED", "/file3": "SUCCESS"},
                                        "output": {"/file": "foo\n", "/file2": "bar\n", "/file3": "baz\n"}}]}))
    cs.append(case("job-modified-input-reprocessed", f"{PT} TestPipelineInputDataModification", {"data": []},
                   pfs("data", "data", "/*"), singles("data", ["/file2"]),
                   "Overwriting a file changes its datum hash: the datum reruns and its old output is replaced.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/* /pfs/out/"]},
                             "steps": [{"commit": {"data": [{"put": "/file", "content": "foo\n"}]},
                                        "output": {"/file": "foo\n"}},
                                       {"commit": {"data": [{"put": "/file", "content": "bar\n"}]},
                                        "job": {"data_processed": 1, "data_skipped": 0},
                                        "output": {"/file": "bar\n"}},
                                       {"commit": {"data": [{"delete": "/file"}, {"put": "/file2", "content": "buzz\n"}]},
                                        "output": {"/file2": "buzz\n"}}]}))
    cs.append(case("job-empty-commit-glob-root", f"{PT} TestPipelineEmptyInput", {"data": []},
                   pfs("data", "data", "/"), [],
                   "An empty input commit gives zero datums even for glob '/'; the job succeeds.", True,
                   kind="job",
                   expected={"transform": {"cmd": ["true"]},
                             "steps": [{"commit": {"data": []}, "job_state": "JOB_SUCCESS",
                                        "job": {"data_total": 0}}]}))
    cs.append(case("job-cross-empty-side", f"{PT} TestPipelineEmptyInput + worker.go iterate()",
                   {"a": files(["/x"]), "b": []}, {"cross": [pfs("a", "a", "/*"), pfs("b", "b", "/*")]}, [],
                   "A cross with an empty side has zero datums; the job succeeds with an empty output.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["touch /pfs/out/x"]},
                             "steps": [{"commit": {"b": []}, "job_state": "JOB_SUCCESS", "job": {"data_total": 0},
                                        "output": {}}]}))
    cs.append(case("job-cross-never-committed-side", f"{PT} TestSkippedDatums (a pipeline runs one empty job first)",
                   {"a": files(["/x"]), "b": []}, {"cross": [pfs("a", "a", "/*"), pfs("b", "b", "/*")]}, [],
                   "An input repo with no commit at all counts as empty: the job has zero datums and succeeds.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["touch /pfs/out/x"]},
                             "job_state": "JOB_SUCCESS", "job": {"data_total": 0}, "output": {}}))
    tj = f"{PACH}:src/server/worker/pipeline/transform/worker.go:131-180 + pending_job.go:93-130"
    cs.append(case("job-skip-chain-then-delete", f"{tj} (TestPipelineInputDataModification)", {"data": []},
                   pfs("data", "data", "/*"), singles("data", ["/b", "/c"]),
                   "A datum skipped in job 2 still owns its output from job 1: deleting its file in job 3 "
                   "removes that output.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp $data /pfs/out/"]},
                             "steps": [{"commit": {"data": [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}]},
                                        "job": {"data_processed": 2}},
                                       {"commit": {"data": [{"put": "/c", "content": "3"}]},
                                        "job": {"data_processed": 1, "data_skipped": 2}},
                                       {"commit": {"data": [{"delete": "/a"}]}, "job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 0, "data_skipped": 2, "data_total": 2},
                                        "output": {"/b": "2", "/c": "3"}}]}))
    cs.append(case("job-failed-job-in-the-middle", f"{tj} (the base is the last successful job)", {"data": []},
                   pfs("data", "data", "/*"), singles("data", ["/b", "/c", "/d"]),
                   "Job 2 fails on the new datum /c. New datums run first (parallel phase); when one fails "
                   "the job fails before the serial phase, which is where datums of the base job are "
                   "skipped, so job 2 reports data_skipped 0 (registry.go:296-316 and 381-386; worker.go "
                   "counts Total in the parallel task and Skipped in the serial one). Job 3 (c fixed, a "
                   "deleted) takes job 1 as its base: b skipped, c processed, a's output removed; job 4 "
                   "skips b and c.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["grep -q bad $data && exit 1", "cp $data /pfs/out/"]},
                             "spec": {"datum_tries": 1},
                             "steps": [{"commit": {"data": [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}]},
                                        "job_state": "JOB_SUCCESS"},
                                       {"commit": {"data": [{"put": "/c", "content": "bad"}]}, "job_state": "JOB_FAILURE",
                                        "job": {"data_processed": 0, "data_skipped": 0, "data_failed": 1,
                                                "data_total": 3}},
                                       {"commit": {"data": [{"put": "/c", "content": "good"}, {"delete": "/a"}]},
                                        "job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 1, "data_skipped": 1, "data_total": 2},
                                        "output": {"/b": "2", "/c": "good"}},
                                       {"commit": {"data": [{"put": "/d", "content": "4"}]}, "job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 1, "data_skipped": 2},
                                        "output": {"/b": "2", "/c": "good", "/d": "4"}}]}))
    cs.append(case("job-failed-new-datum-stops-serial-phase", f"{tj} + registry.go:284-316,381-386", {"data": []},
                   pfs("data", "data", "/*"), singles("data", ["/a", "/b", "/c"]),
                   "Job 2 adds a failing datum /c and changes /b. The new datum runs in the parallel phase and "
                   "fails, so the serial phase (skip /a, rerun the changed /b) never runs: nothing processed, "
                   "nothing skipped, one failure.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["grep -q bad $data && exit 1", "cp $data /pfs/out/"]},
                             "spec": {"datum_tries": 1},
                             "steps": [{"commit": {"data": [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}]},
                                        "job_state": "JOB_SUCCESS"},
                                       {"commit": {"data": [{"put": "/c", "content": "bad"}, {"put": "/b", "content": "22"}]},
                                        "job_state": "JOB_FAILURE",
                                        "job": {"data_processed": 0, "data_skipped": 0, "data_failed": 1,
                                                "data_total": 3}}]}))
    cs.append(case("job-duplicate-output-skipped-collision", f"{PT} TestValidationFailure + semantics §4.5",
                   {"data": []}, pfs("data", "data", "/*"), singles("data", ["/a", "/b"]),
                   "A new datum writing the same path as a skipped datum's inherited output is a "
                   "collision too: the job fails.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["echo hi > /pfs/out/same"]},
                             "steps": [{"commit": {"data": [{"put": "/a", "content": "1"}]}, "job_state": "JOB_SUCCESS"},
                                       {"commit": {"data": [{"put": "/b", "content": "2"}]}, "job_state": "JOB_FAILURE",
                                        "reason_contains": "duplicate path output by different datums"}]}))
    cs.append(case("job-output-path-freed-by-removed-datum", f"{PACH}:src/server/worker/pipeline/transform/worker.go:131-180 (deleter) + master.go validation",
                   {"data": []}, pfs("data", "data", "/*"), singles("data", ["/b"]),
                   "The removed datum's outputs are deleted in the same output commit, before it is validated: a "
                   "new datum may write the path the removed one wrote.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cat $data > /pfs/out/same"]},
                             "steps": [{"commit": {"data": [{"put": "/a", "content": "A"}]}, "job_state": "JOB_SUCCESS"},
                                       {"commit": {"data": [{"delete": "/a"}, {"put": "/b", "content": "B"}]},
                                        "job_state": "JOB_SUCCESS", "output": {"/same": "B"}}]}))
    cs.append(case("job-output-path-freed-by-changed-datum", f"{PACH}:src/server/worker/pipeline/transform/worker.go:131-180",
                   {"data": []}, pfs("data", "data", "/*"), singles("data", ["/a"]),
                   "A changed datum's old outputs are deleted before its new ones are added: rewriting the same "
                   "path is no collision.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cat $data > /pfs/out/same"]},
                             "steps": [{"commit": {"data": [{"put": "/a", "content": "1"}]}, "job_state": "JOB_SUCCESS"},
                                       {"commit": {"data": [{"put": "/a", "content": "2"}]},
                                        "job_state": "JOB_SUCCESS", "output": {"/same": "2"}}]}))
    cs.append(case("job-file-dir-collision", f"{PT} TestValidationFailure + master.go (file / directory path collision)",
                   {"data": files(["/a", "/b"])}, pfs("data", "data", "/*"), singles("data", ["/a", "/b"]),
                   "One datum writes /x, another /x/y: a file/directory collision fails the job.", True,
                   kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": [
                       "if [ -e /pfs/data/a ]; then echo 1 > /pfs/out/x; else mkdir /pfs/out/x; echo 2 > /pfs/out/x/y; fi"]},
                             "job_state": "JOB_FAILURE"}))
    cs.append(case("job-env-stdin-and-working-dir", f"{PT} TestPipelineEnv + driver.go:371-384",
                   {"data": files(["/file"], "foo")}, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "stdin lines are joined with newlines; env from transform.env; working_dir is cmd.Dir.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["pwd > /pfs/out/pwd", "echo \"$greeting\" > /pfs/out/env"],
                                           "env": {"greeting": "hello world"}, "working_dir": "/pfs/data"},
                             "job_state": "JOB_SUCCESS",
                             "output": {"/pwd": "/pfs/data\n", "/env": "hello world\n"}}))
    cs.append(case("job-staging-full-path", f"{PT} TestMultipleInputsFromTheSameBranch + semantics §0.2",
                   {"data": files(["/a/b/c.txt"], "deep")}, pfs("data", "data", "/a/*"), [[("data", "/a/b/")]],
                   "A directory datum stages its whole subtree at its full path; $data names the directory.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/a/b/c.txt /pfs/out/c.txt",
                                                                    "echo \"$data\" > /pfs/out/name"]},
                             "job_state": "JOB_SUCCESS",
                             "output": {"/c.txt": "deep", "/name": "/pfs/data/a/b\n"}}))
    cs.append(case("job-pfs-out-empty-per-datum", f"{PT} TestMultipleInputsFromTheSameBranch ('cat /pfs/out/file')",
                   {"data": files(["/a", "/b"])}, pfs("data", "data", "/*"), singles("data", ["/a", "/b"]),
                   "/pfs/out is empty at the start of every datum.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["n=$(ls -A /pfs/out | wc -l)", "echo $n > /pfs/out/$(basename $data)"]},
                             "job_state": "JOB_SUCCESS", "output": {"/a": "0\n", "/b": "0\n"}}))
    dd = f"{PACH}:src/server/worker/datum/datum.go"
    cs.append(case("job-err-cmd-after-every-attempt", f"{dd}:138-147,313-317 + driver.go:433-460",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "err_cmd runs after every failed attempt and its output is user-code log; both fail "
                   "here, so the datum is FAILED after 3 attempts and 3 err_cmd runs.", True, kind="job",
                   expected={"transform": {"cmd": ["sh", "-c", "echo run-marker; exit 1"],
                                           "err_cmd": ["sh", "-c", "echo err-marker; exit 1"]},
                             "job_state": "JOB_FAILURE", "job": {"data_failed": 1, "data_recovered": 0},
                             "logs_count": {"run-marker": 3, "err-marker": 3},
                             "datum_states": {"/file": "FAILED"}}))
    marker = "/tmp/pach-airflow-h8-$PACH_JOB_ID-$PACH_DATUM_ID"
    cs.append(case("job-retry-then-success-fresh-out", f"{dd}:138-147 (WithDatum) + withData (fresh /pfs/out per attempt)",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "The first attempt writes /pfs/out/stale and fails; the second succeeds. /pfs/out is made "
                   "anew for every attempt (withData removes the datum's storage root), so only the second "
                   "attempt's output is uploaded; the datum counts as processed.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": [
                       f"m={marker}",
                       "if [ ! -e $m ]; then touch $m; echo stale > /pfs/out/stale; exit 1; fi",
                       "rm -f $m; echo good > /pfs/out/good"]},
                             "job_state": "JOB_SUCCESS", "job": {"data_processed": 1, "data_failed": 0},
                             "output": {"/good": "good\n"}, "datum_states": {"/file": "SUCCESS"}}))
    cs.append(case("job-recovered-state-sticks", f"{dd}:205-213 (handleFailed) + 310-322 (run)",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "RECOVERED is set on the datum's meta when an err_cmd succeeds and never reset: err_cmd "
                   "succeeds after attempt 1 and fails after attempts 2 and 3, and the datum still ends "
                   "RECOVERED (the job succeeds). Read from code, not tested upstream.", True, kind="job",
                   expected={"transform": {"cmd": ["sh", "-c", "exit 1"], "err_cmd": ["sh"],
                                           "err_stdin": [f"m={marker}", "if [ -e $m ]; then rm -f $m; exit 1; fi",
                                                         "touch $m", "exit 0"]},
                             "job_state": "JOB_SUCCESS", "job": {"data_recovered": 1, "data_failed": 0},
                             "datum_states": {"/file": "RECOVERED"}}))
    cs.append(case("job-recovered-then-succeeded", f"{dd}:183-213,310-322 + transform/worker.go:176-179 (skippableDatum)",
                   one, pfs("data", "data", "/*"), singles("data", ["/file", "/other"]),
                   "Attempt 1 fails and err_cmd succeeds (meta state RECOVERED), attempt 2 succeeds: the datum "
                   "is counted processed and its output uploaded, but its meta keeps RECOVERED (PROCESSED is "
                   "the zero value and success never sets it), so list datum shows RECOVERED and the next job "
                   "does not skip it (skippableDatum wants PROCESSED). The reference's open question 2, read "
                   "from code; untested upstream.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": [
                       f"m={marker}", "if [ ! -e $m ]; then touch $m; exit 1; fi", "rm -f $m",
                       "cp $data /pfs/out/"], "err_cmd": ["true"]},
                             "steps": [{"job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 1, "data_recovered": 0, "data_failed": 0},
                                        "datum_states": {"/file": "RECOVERED"}, "output": {"/file": "foo"}},
                                       {"commit": {"data": [{"put": "/other", "content": "o"}]},
                                        "job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 2, "data_skipped": 0},
                                        "output": {"/file": "foo", "/other": "o"}}]}))
    cs.append(case("job-recovered-then-fixed", f"{PT} TestPipelineErrorHandling/RecoveredDatums",
                   {"data": files(["/foo"], "bar\n")}, pfs("data", "data", "/*"), [[("data", "/foo")]],
                   "A recovered datum succeeds the job with nothing processed; after an update whose cmd "
                   "succeeds, the datum is processed (recovered datums are not skipped).", False, kind="job",
                   expected={"transform": {"cmd": ["bash"], "stdin": ["false"], "err_cmd": ["bash"], "err_stdin": ["true"]},
                             "steps": [{"job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 0, "data_recovered": 1, "data_failed": 0}},
                                       {"update_transform": {"cmd": ["bash"], "stdin": ["true"]},
                                        "job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 1, "data_recovered": 0, "data_failed": 0}}]}))
    two = {"data": files(["/fast", "/slow"], "x")}
    cs.append(case("job-datum-timeout", f"{PT} TestPipelineWithDatumTimeout", two, pfs("data", "data", "/*"),
                   singles("data", ["/fast", "/slow"]),
                   "A datum running past datum_timeout is killed and FAILED; the job fails. The test uses 20s "
                   "and the default tries; here 2s and one try keep it short.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": [
                       "if [ -e /pfs/data/slow ]; then while true; do sleep 1; done; fi", "cp /pfs/data/* /pfs/out/"]},
                             "spec": {"datum_timeout": "2s", "datum_tries": 1},
                             "job_state": "JOB_FAILURE", "job": {"data_processed": 1, "data_failed": 1},
                             "datum_states": {"/fast": "SUCCESS", "/slow": "FAILED"}}))
    cs.append(case("job-datum-timeout-no-recovery", f"{dd}:297-322 (err_cmd runs with the timed-out context) + os/exec Cmd.Start",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "err_cmd runs with the attempt's context; after a datum_timeout that context is done, so "
                   "exec refuses to start err_cmd and the datum cannot be recovered: FAILED. Read from code.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh", "-c", "sleep 30"], "err_cmd": ["sh", "-c", "echo err-marker"]},
                             "spec": {"datum_timeout": "1s", "datum_tries": 1},
                             "job_state": "JOB_FAILURE", "job": {"data_failed": 1, "data_recovered": 0},
                             "logs_count": {"err-marker": 0}, "datum_states": {"/file": "FAILED"}}))
    cs.append(case("job-job-timeout", f"{PT} TestPipelineWithJobTimeout", two, pfs("data", "data", "/*"),
                   singles("data", ["/fast", "/slow"]),
                   "job_timeout counts from job start; when it passes the job is KILLED (registry.go:141-171). "
                   "The test uses 20s; 3s here.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["sleep 5", "cp /pfs/data/* /pfs/out/"]},
                             "spec": {"job_timeout": "3s", "datum_tries": 1},
                             "job_state": "JOB_KILLED"}))
    cs.append(case("job-dont-read-stdin", f"{PT} TestDontReadStdin + driver.go (broken pipe ignored)",
                   {"data": files(["/file"])}, pfs("data", "data", "/"), [[("data", "/")]],
                   "cmd 'true' never reads its stdin; writing a large stdin to it must not fail the datum "
                   "(Pachyderm ignores the broken pipe). 100 KB of stdin, more than a pipe holds, so the pipe really breaks.", True, kind="job",
                   expected={"transform": {"cmd": ["true"], "stdin": ["x" * 1000] * 100},
                             "job_state": "JOB_SUCCESS", "datum_states": {"/": "SUCCESS"}}))
    cs.append(case("job-datum-dedup-empty-commit", f"{PT} TestDatumDedup", {"data": files(["/file"], "foo")},
                   pfs("data", "data", "/*"), [[("data", "/file")]],
                   "A new input commit that changes nothing: the datum is skipped (the test checks the job "
                   "finishes within 5 s although each datum sleeps 10 s).", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/file /pfs/out/file"]},
                             "steps": [{"job": {"data_processed": 1}},
                                       {"commit": {"data": []}, "job_state": "JOB_SUCCESS",
                                        "job": {"data_processed": 0, "data_skipped": 1},
                                        "output": {"/file": "foo"}}]}))
    cs.append(case("job-reprocess-every-job", f"{PACH}:src/server/worker/pipeline/transform/registry.go:110",
                   {"data": []}, pfs("data", "data", "/*"), singles("data", ["/a", "/b"]),
                   "reprocess_spec every_job turns skipping off: the second job processes both datums.", True,
                   kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp /pfs/data/* /pfs/out/"]},
                             "spec": {"reprocess_spec": "every_job"},
                             "steps": [{"commit": {"data": [{"put": "/a", "content": "1"}]},
                                        "job": {"data_processed": 1, "data_skipped": 0}},
                                       {"commit": {"data": [{"put": "/b", "content": "2"}]},
                                        "job": {"data_processed": 2, "data_skipped": 0},
                                        "output": {"/a": "1", "/b": "2"}}]}))
    ref = {"data": files(["/file"], "foo"), "ref": files(["/reference_file"], "foo")}
    cs.append(case("job-reference-input", f"{PT} TestReferenceInput", ref,
                   {"cross": [pfs("data", "data", "/*"), pfs("ref", "ref", "/*", reference=True)]},
                   [[("data", "/file"), ("ref", "/reference_file")]],
                   "A reference input's content is left out of the datum hash: changing it skips the datum; "
                   "changing the other input reprocesses it.", False, kind="job",
                   expected={"transform": {"cmd": ["bash"], "stdin": ["true"]},
                             "steps": [{"all_datum_states": "SUCCESS"},
                                       {"commit": {"ref": [{"put": "/reference_file", "content": "bar"}]},
                                        "all_datum_states": "SKIPPED"},
                                       {"commit": {"data": [{"put": "/file", "content": "bar"}]},
                                        "all_datum_states": "SUCCESS"}]}))
    drv = f"{PACH}:src/server/worker/driver/driver.go"
    cs.append(case("job-stdin-joined-with-newlines", f"{drv}:371-373", one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "transform.stdin lines are joined with '\\n' and end with '\\n'.", True, kind="job",
                   expected={"transform": {"cmd": ["sh", "-c", "cat > /pfs/out/stdin"], "stdin": ["a", "", "b c"]},
                             "job_state": "JOB_SUCCESS", "output": {"/stdin": "a\n\nb c\n"}}))
    cs.append(case("job-cmd-exec-no-shell", f"{drv}:366-384 (exec.CommandContext(cmd[0], cmd[1:]...))", one,
                   pfs("data", "data", "/*"), [[("data", "/file")]],
                   "cmd is exec'd directly: arguments keep their spaces and '$' is not expanded.", True, kind="job",
                   expected={"transform": {"cmd": ["sh", "-c", "printf '%s|%s' \"$1\" \"$2\" > /pfs/out/args", "argv0",
                                                   "a  b", "$HOME"]},
                             "job_state": "JOB_SUCCESS", "output": {"/args": "a  b|$HOME"}}))
    cs.append(case("job-output-symlink-uploads-content", f"{PACH}:src/server/worker/datum/datum.go uploadOutput + TestEmptyFiles",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "A symlink in /pfs/out to a staged input uploads the input's content.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["ln -s /pfs/data/file /pfs/out/link",
                                                                    "mkdir -p /pfs/out/d/e", "echo n > /pfs/out/d/e/f"]},
                             "job_state": "JOB_SUCCESS", "output": {"/link": "foo", "/d/e/f": "n\n"}}))
    cs.append(case("job-dir-datum-hash-follows-subtree", f"{PACH}:src/server/worker/common/common.go:57-70 + source.go (dir hash)",
                   {"data": files(["/d/x", "/e/y"], "1")}, pfs("data", "data", "/*"), singles("data", ["/d/", "/e/"]),
                   "A directory datum's hash covers its subtree: changing /d/x reruns /d/ only; /e/ is skipped.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cat $data/* > /pfs/out/$(basename $data)"]},
                             "steps": [{"job": {"data_processed": 2}},
                                       {"commit": {"data": [{"put": "/d/x", "content": "2"}]},
                                        "job": {"data_processed": 1, "data_skipped": 1},
                                        "output": {"/d": "2", "/e": "1"}},
                                       {"commit": {"data": [{"put": "/d/new", "content": "3"}]},
                                        "job": {"data_processed": 1, "data_skipped": 1},
                                        "output": {"/d": "32", "/e": "1"}}]}))
    cs.append(case("job-join-skips-unchanged-pairs", f"{PT} TestSkippedDatums + worker.go processMergeTask",
                   {"a": files(["/1", "/2"], "a"), "b": files(["/1", "/2"], "b")},
                   {"join": [pfs("a", "a", "/(*)", join_on="$1"), pfs("b", "b", "/(*)", join_on="$1")]},
                   [[("a", "/1"), ("b", "/1")], [("a", "/2"), ("b", "/2")]],
                   "Changing b:/2 reruns the pair of key 2 only.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cat $a $b > /pfs/out/$(basename $a)"]},
                             "steps": [{"job": {"data_processed": 2}},
                                       {"commit": {"b": [{"put": "/2", "content": "B"}]},
                                        "job": {"data_processed": 1, "data_skipped": 1},
                                        "output": {"/1": "ab", "/2": "aB"}}]}))
    cs.append(case("job-env-only-present-inputs", f"{drv}:560-575 (UserCodeEnv iterates the datum's inputs)",
                   {"a": files(["/1", "/2"]), "b": files(["/2"])},
                   {"join": [pfs("a", "a", "/(*)", join_on="$1", outer_join=True), pfs("b", "b", "/(*)", join_on="$1")]},
                   [[("a", "/1")], [("a", "/2"), ("b", "/2")]],
                   "An outer-join datum holding only a's file has no $b and no PACH_DATUM_b_JOIN_ON.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": [
                       "echo \"${b-unset}|${PACH_DATUM_b_JOIN_ON-unset}|$PACH_DATUM_a_JOIN_ON\" > /pfs/out/$(basename $a)"]},
                             "job_state": "JOB_SUCCESS", "output": {"/1": "unset|unset|1\n", "/2": "/pfs/b/2|2|2\n"}}))
    cs.append(case("job-empty-group-key-no-env", f"{drv}:568-573 (only non-empty keys are exported)",
                   {"a": files(["/1", "/2"])}, {"group": [pfs("a", "a", "/(*)", group_by="$9")]},
                   [[("a", "/1"), ("a", "/2")]],
                   "group_by '$9' names no capture: every key is '' (one group) and PACH_DATUM_a_GROUP_BY is not set.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["echo \"${PACH_DATUM_a_GROUP_BY-unset}\" > /pfs/out/g"]},
                             "job_state": "JOB_SUCCESS", "output": {"/g": "unset\n"}}))
    hello = {"data": files(["/file"], "hello")}
    cs.append(case("job-empty-files-input", f"{PT} TestEmptyFiles + pps.proto PFSInput.empty_files",
                   hello, pfs("data", "data", "/*", empty_files=True), [[("data", "/file")]],
                   "empty_files stages zero-byte placeholders; a symlink to one in /pfs/out uploads the real "
                   "content (TestEmptyFiles).", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["wc -c < $data | tr -d ' ' > /pfs/out/size",
                                                                    "ln -s $data /pfs/out/link"]},
                             "job_state": "JOB_SUCCESS", "output": {"/size": "0\n", "/link": "hello"}}))
    cs.append(case("job-lazy-input-readable", f"{PT} TestLazyPipeline", hello, pfs("data", "data", "/*", lazy=True),
                   [[("data", "/file")]], "A lazy input reads the same bytes (a named pipe in Pachyderm).", True,
                   kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cat $data > /pfs/out/copy"]},
                             "job_state": "JOB_SUCCESS", "output": {"/copy": "hello"}}))
    five = {"data": files([f"/f{i}" for i in range(5)], lambda p: p[1:])}
    cs.append(case("job-datum-set-spec-same-result", f"{PACH}:src/server/worker/pipeline/transform/registry.go:431-452",
                   five, pfs("data", "data", "/*"), singles("data", [f"/f{i}" for i in range(5)]),
                   "datum_set_spec only packs datums into work units: results are the same.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ["cp $data /pfs/out/"]},
                             "spec": {"datum_set_spec": {"number": 2}},
                             "job_state": "JOB_SUCCESS", "output": {f"/f{i}": f"f{i}" for i in range(5)}}))
    odd = ["a b", "h#sh", "pct%41", "k=v&x", "comma,semi;colon:", "q'uote", "back\\slash", "~tilde", ".dot", "d i r/f $1"]
    cs.append(case("job-output-special-names", f"{PACH}:src/internal/storage/paths.go:15-30 (ValidateFilename)",
                   one, pfs("data", "data", "/*"), [[("data", "/file")]],
                   "Output names may hold any printable ASCII but the glob characters.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": ['mkdir -p "/pfs/out/d i r"'] + [
                       f"printf %s '{n}' > '/pfs/out/{n}'" if "'" not in n else f'printf %s "{n}" > "/pfs/out/{n}"'
                       for n in odd]},
                             "job_state": "JOB_SUCCESS", "output": {"/" + n: n for n in odd}}))
    t1, t2, t3 = "2025-01-09T14:41:45Z", "2025-01-09T14:41:55Z", "2025-01-09T14:42:05Z"
    cron_src = f"{PT} TestCronPipeline"

    def tick(t, overwrite=False):
        return {"commit": {"p_time": ([{"delete": "/"}] if overwrite else []) + [{"put": f"/{t}", "content": ""}]}}
    cs.append(case("cron-overwrite", f"{cron_src}/CronOverwrite + monitor.go (overwrite deletes '/')", {},
                   {"cron": {"name": "time", "spec": "@every 10s", "overwrite": True}}, [[("time", f"/{t3}")]],
                   "With overwrite each tick commit holds only its own tick file; the previous tick's datum "
                   "disappears and its output is deleted. Ticks are written as the cron side writes them.",
                   True, kind="job",
                   expected={"transform": {"cmd": ["bash"], "stdin": ["cp /pfs/time/* /pfs/out/"]},
                             "steps": [{"job_state": "JOB_SUCCESS", "output": {}},
                                       {**tick(t1, True), "output": {f"/{t1}": ""}},
                                       {**tick(t2, True), "output": {f"/{t2}": ""},
                                        "job": {"data_processed": 1, "data_skipped": 0, "data_total": 1}},
                                       {**tick(t3, True), "output": {f"/{t3}": ""}}]}))
    cs.append(case("cron-pfs-cross", f"{cron_src}/CronPFSCross", {"data": files(["/file"], "file")},
                   {"cross": [{"cron": {"name": "time", "spec": "@every 20s"}}, pfs("data", "data", "/")]},
                   [[("time", f"/{t1}"), ("data", "/")], [("time", f"/{t2}"), ("data", "/")]],
                   "A cron input (glob '/*' on <pipeline>_<name>@master) crossed with a PFS input: one datum "
                   "per tick; the older tick's datum is skipped.", True, kind="job",
                   expected={"transform": {"cmd": ["bash"], "stdin": ["cp /pfs/data/file /pfs/out/file-$(basename $time)"]},
                             "steps": [{"job_state": "JOB_SUCCESS", "job": {"data_total": 0}},
                                       {**tick(t1), "job": {"data_processed": 1}},
                                       {**tick(t2), "job": {"data_processed": 1, "data_skipped": 1},
                                        "output": {f"/file-{t1}": "file", f"/file-{t2}": "file"}}]}))
    cs.append(case("job-env-root-and-cross", f"{PT} TestPipelineEnv + driver.go:566 (filepath.Join)",
                   {"a": files(["/x/y"], "1"), "b": files(["/z"], "2")},
                   {"cross": [pfs("a", "a", "/"), pfs("b", "b", "/*")]}, [[("a", "/"), ("b", "/z")]],
                   "$<name> is filepath.Join('/pfs', name, path): '/pfs/a' for glob '/'; every input of a "
                   "cross datum gets its variables.", True, kind="job",
                   expected={"transform": {"cmd": ["sh"], "stdin": [
                       "echo \"$a|$b|${a_COMMIT:+set}|${b_COMMIT:+set}\" > /pfs/out/env"]},
                             "job_state": "JOB_SUCCESS", "output": {"/env": "/pfs/a|/pfs/b/z|set|set\n"}}))
    return cs


# ------------------------------------------------------------------------------------ refusals

def error_cases() -> list[dict]:
    """Inputs Pachyderm refuses when a pipeline is created: ``list datum -f`` must refuse them too,
    naming the problem, before anything is written."""
    api = f"{PACH}:src/server/pps/server/api_server.go:140-220 (validateInput)"
    names = f"{PACH}:src/internal/ppsutil/util.go:572-640 (validateNames)"
    fs = {"a": files(["/1"]), "b": files(["/2"]), "c": files(["/3"])}

    def err(cid, source, spec, mentions, note, input_files=fs):
        return case(cid, source, input_files, spec, None, note, False, kind="error", error_mentions=mentions)
    # Pachyderm accepts a join input without join_on and a group input without group_by (no check in
    # validateInput; every file gets the key '', worker.go:134-135), but the product owner's issue
    # requires "every join input has join_on, every group input group_by": the lead decided (H10, B1)
    # that spec.py keeps refusing them, naming the field.
    rule = (f"{PACH}:src/server/pps/server/api_server.go (validateInput accepts it); refused here by the "
            f"product owner's rule 'every join input has join_on, every group input group_by'")
    empty_key = ("Pachyderm would key every file '' (worker.go:134-135) and {what}; pach_airflow refuses it "
                 "by the issue's rule 'every join input has join_on, every group input group_by'.")
    return [
        err("join-empty-join-on-crosses", rule,
            {"join": [pfs("a", "a", "/(*)", join_on=""), pfs("b", "b", "/(*)", join_on="")]}, ["join_on"],
            empty_key.format(what="cross the two inputs")),
        err("group-empty-group-by", rule, {"group": [pfs("a", "a", "/*")]}, ["group_by"],
            empty_key.format(what="make one datum of every file")),
        err("group-in-cross", rule, {"cross": [{"group": [pfs("a", "a", "/*")]}, pfs("b", "b", "/*")]},
            ["group_by"], empty_key.format(what="cross one datum of every file of a with b")),
        err("err-cross-duplicate-names", names, {"cross": [pfs("x", "a", "/*"), pfs("x", "b", "/*")]}, ["x"],
            'name "x" was used more than once'),
        err("err-join-duplicate-names", names,
            {"join": [pfs("x", "a", "/(*)", join_on="$1"), pfs("x", "b", "/(*)", join_on="$1")]}, ["x"],
            "Names must be unique in a join."),
        err("err-group-duplicate-names", names,
            {"group": [pfs("x", "a", "/(*)", group_by="$1"), pfs("x", "b", "/(*)", group_by="$1")]}, ["x"],
            "Names must be unique in a group."),
        err("err-cross-clashes-with-union-branch", names,
            {"cross": [{"union": [pfs("x", "a", "/*"), pfs("y", "b", "/*")]}, pfs("x", "c", "/*")]}, ["x"],
            "Union branches may share names with each other, but not with inputs crossed with the union."),
        err("err-input-named-out", names, pfs("out", "a", "/*"), ["out"], "input cannot be named out"),
        err("err-input-named-env", names, pfs(".env", "a", "/*"), [".env"], "input cannot be named .env"),
        err("err-repo-out-needs-name", api, {"pfs": {"repo": "out", "glob": "/*"}}, ["out"],
            "inputs based on repos named \"out\" must have 'name' set", {"out": files(["/1"])}),
        err("err-empty-glob", api, {"pfs": {"name": "a", "repo": "a", "glob": ""}}, ["glob"], "input must specify a glob"),
        err("err-s3-glob-not-root", api, pfs("a", "a", "/*", s3=True), ["s3", "glob"],
            "inputs that set 's3' to 'true' must also set 'glob', to \"/\""),
        err("err-s3-in-union", api, {"union": [pfs("a", "a", "/", s3=True), pfs("b", "b", "/*")]}, ["s3"],
            "S3 inputs in union expressions are not supported"),
        err("err-s3-in-join", api, {"join": [pfs("a", "a", "/", s3=True), pfs("b", "b", "/(*)", join_on="$1")]},
            ["s3"], "S3 inputs in join expressions are not supported"),
        err("err-input-commit-set", api, pfs("a", "a", "/*", commit="0123456789abcdef0123456789abcdef"), ["commit"],
            "input cannot come from a commit; use a branch with head pointing to the commit"),
        err("err-multiple-input-types", api, {**pfs("a", "a", "/*"), "cross": [pfs("b", "b", "/*")]},
            ["multiple", "cross", "pfs", "one"], "multiple input types set"),
    ]


# ------------------------------------------------------------------------------------ semantics

EMPTY_D = {"steps": [{"commit": {"d": []}}]}
DEEP = ["/a/b/c/d.txt", "/a/b/e.txt", "/a/f.txt", "/g.txt", "/h/i/j.csv", "/h/k.csv"]


def semantics_cases() -> list[dict]:
    cs = []
    deep = {"data": files(DEEP)}
    src = f"{PACH}:src/server/pfs/server/paths.go + server_file.go:501-530 (GlobFile)"

    def g(cid, pattern, want, note, fs=deep, repo="data"):
        cs.append(case(cid, src, fs, pfs(repo, repo, pattern), singles(repo, want), note, True))
    g("deep-root", "/", ["/"], "'/' is the whole repo as one datum.")
    g("deep-top", "/*", ["/a/", "/g.txt", "/h/"], "'/*': top-level files and directories.")
    g("deep-doublestar", "/**", ["/a/", "/a/b/", "/a/b/c/", "/a/b/c/d.txt", "/a/b/e.txt", "/a/f.txt", "/g.txt",
                                "/h/", "/h/i/", "/h/i/j.csv", "/h/k.csv"], "'/**': every directory and every file.")
    g("deep-doublestar-under", "/a/**", ["/a/b/", "/a/b/c/", "/a/b/c/d.txt", "/a/b/e.txt", "/a/f.txt"],
      "'**' after a literal directory: everything below it, not the directory itself.")
    g("deep-doublestar-suffix", "/**.csv", ["/h/i/j.csv", "/h/k.csv"], "'**' crosses '/'.")
    g("deep-doublestar-middle", "/**/*.txt", ["/a/b/c/d.txt", "/a/b/e.txt", "/a/f.txt"],
      "'/**/' needs at least one directory level here ('**' then a literal '/'): /g.txt does not match.")
    g("deep-two-levels", "/*/*", ["/a/b/", "/a/f.txt", "/h/i/", "/h/k.csv"], "Children of top-level dirs.")
    g("deep-three-levels", "/*/*/*", ["/a/b/c/", "/a/b/e.txt", "/h/i/j.csv"], "Grandchildren.")
    g("deep-trailing-slash-cleaned", "/*/", ["/a/", "/g.txt", "/h/"],
      "CleanPath drops a trailing '/': '/*/' is '/*' and still matches files.")
    g("deep-no-leading-slash", "*/*.txt", ["/a/f.txt"], "CleanPath adds the leading '/'.")
    g("deep-double-slashes", "//a//*", ["/a/b/", "/a/f.txt"], "CleanPath collapses '//'.")
    g("deep-dot-segments", "/./a/./b/*", ["/a/b/c/", "/a/b/e.txt"], "CleanPath drops '.' parts.")
    g("deep-dotdot-resolved", "/a/../h/*", ["/h/i/", "/h/k.csv"], "CleanPath resolves '..' lexically.")
    g("deep-dotdot-above-root", "/../../h/*", ["/h/i/", "/h/k.csv"], "'..' above the root stays at the root.")
    g("deep-relative-dotdot-kept", "../h/*", [],
      "pfsfile.CleanPath is path.Clean(p) THEN a leading '/': a relative '../h/*' stays '/../h/*', which "
      "no stored path can match (src/internal/pfsfile/pfsfile.go).")
    g("deep-relative-dot", "./a/*", ["/a/b/", "/a/f.txt"], "path.Clean('./a/*') is 'a/*', then '/a/*'.")
    g("deep-exact-file", "/a/f.txt", ["/a/f.txt"], "A glob without special characters names one path.")
    g("deep-exact-dir", "/a/b", ["/a/b/"], "A literal directory path matches the directory.")
    g("deep-missing", "/nope/*", [], "No match: zero datums, not an error.")
    g("deep-star-no-slash-cross", "/a*", ["/a/"], "'*' never crosses '/'.")
    g("deep-question-dir", "/?", ["/a/", "/h/"], "'?' matches one character; directories match.")
    g("deep-class-range", "/[a-g]*", ["/a/", "/g.txt"], "Character class with a range.")
    g("deep-class-negated-bang", "/[!a-g]*", ["/h/"], "'[!...]' negates.")
    g("deep-class-negated-caret", "/[^a-g]*", ["/h/"], "'[^...]' negates too.")
    g("deep-braces", "/{a,h}/*", ["/a/b/", "/a/f.txt", "/h/i/", "/h/k.csv"], "Braces are alternatives.")
    g("deep-braces-with-slash", "/{a/b,h/i}/*", ["/a/b/c/", "/a/b/e.txt", "/h/i/j.csv"],
      "An alternative may hold '/'.")
    g("deep-extglob-at", "/@(a|h)", ["/a/", "/h/"], "@(...) matches exactly one alternative.")
    g("deep-extglob-negation", "/!(a)", ["/g.txt", "/h/"], "!(a) at top level: everything but 'a'.")
    g("deep-extglob-negation-prefix", "/!(g*)", ["/a/", "/h/"], "!(g*) excludes names starting with g.")
    g("deep-extglob-star", "/*(a|h)", ["/a/", "/h/"], "*(...) zero or more; the empty name does not exist.")
    g("deep-posix-class", "/[[:alpha:]]", ["/a/", "/h/"], "POSIX classes inside brackets.")
    g("deep-posix-digit", "/[[:digit:]]*", [], "No top-level name starts with a digit.")
    esc = (f"{PACH}:src/server/pfs/server/server_file.go:506-509 (WithPrefix(storage.GlobLiteralPrefix(glob))) + "
           "src/internal/storage/paths.go:32-38 + fileset/index/reader.go:192-218 (string prefix)")

    def e(cid, pattern, want, note, fs=deep):
        cs.append(case(cid, esc, fs, pfs("data", "data", pattern), singles("data", want), note, True))
    prefix_note = ("GlobFile reads only paths starting with GlobLiteralPrefix(glob): the glob up to its first "
                   "[*?[]{}!()@+^], taken as a raw string. A '\\' escape before that point stays in the "
                   "prefix while the regex consumes it, so no path can satisfy both: zero matches. ")
    e("deep-escaped-dot-in-prefix", "/g\\.txt", [], prefix_note + "ohmyglob alone would match /g.txt.")
    e("deep-escaped-dot-after-star", "/g*\\.txt", ["/g.txt"],
      "After the first glob character the prefix has ended: '\\.' is a literal '.' and /g.txt matches.")
    g("deep-escaped-star-literal", "/a/\\*", [], "'\\*' is a literal '*' (no stored path can hold one).")

    special = ["/a b.txt", "/a#b", "/a%20b", "/a&b=c", "/comma,semi;colon:x", "/it's", "/q\"uote",
               "/tilde~", "/dollar$1", "/back\\slash", "/pipe|x", "/lt<gt>", "/-dash", "/_under", "/.hidden",
               "/dir with space/f 1"]
    sp = {"data": files(special)}
    top = sorted(special[:-1]) + ["/dir with space/"]
    g("special-top-level", "/*", top, "Printable ASCII other than glob characters is allowed in paths.", sp)
    g("special-space-literal", "/a b.txt", ["/a b.txt"], "A space is literal.", sp)
    e("special-escaped-space-in-prefix", "/a\\ b*", [], prefix_note + "ohmyglob alone would match /a b.txt.", sp)
    e("special-escaped-space-after-glob", "/?\\ b*", ["/a b.txt"], "'\\ ' after '?' is a literal space.", sp)
    g("special-dollar", "/dollar$*", ["/dollar$1"], "'$' is literal in a glob.", sp)
    e("special-escaped-backslash-in-prefix", "/back\\\\slash", [], prefix_note + "ohmyglob alone would match.", sp)
    e("special-escaped-backslash-after-star", "/*\\\\slash", ["/back\\slash"],
      "'\\\\' after '*' is a literal backslash.", sp)
    g("special-pipe-outside-capture", "/pipe|x", ["/pipe|x"], "'|' outside a capture is literal.", sp)
    g("special-comma-outside-braces", "/comma,*", ["/comma,semi;colon:x"], "',' outside braces is literal.", sp)
    g("special-hidden-star", "/.*", ["/.hidden"], "'*' matches names starting with '.' (no dotfile rule).", sp)
    g("special-space-dir", "/dir with space/*", ["/dir with space/f 1"], "Spaces in directory names.", sp)
    g("special-question-space", "/a?b*", ["/a b.txt", "/a#b", "/a&b=c"], "'?' matches any one character.", sp)

    many = {"data": files([f"/l1-{i}/l2-{j}/l3-{k}/f" for i in range(2) for j in range(2) for k in range(2)])}
    g("deep-tree-depth4", "/*/*/*/*", [f"/l1-{i}/l2-{j}/l3-{k}/f" for i in range(2) for j in range(2) for k in range(2)],
      "Depth-4 matches only the files.", many)
    g("deep-tree-depth3-dirs", "/*/*/*", [f"/l1-{i}/l2-{j}/l3-{k}/" for i in range(2) for j in range(2) for k in range(2)],
      "Depth-3 matches only directories.", many)
    g("deep-tree-doublestar-f", "/**/f", [f"/l1-{i}/l2-{j}/l3-{k}/f" for i in range(2) for j in range(2) for k in range(2)],
      "'**/f' at any depth.", many)

    # combinators
    ab = {"a": files(["/1", "/2", "/3"]), "b": files(["/2", "/3", "/4"]), "c": files(["/3", "/4", "/5"])}
    jsrc = f"{PACH}:src/server/worker/datum/worker.go:242-272 (processMergeTask)"

    def j(cid, spec, want, note, fs=ab, expected=None):
        extra = {"expected": expected} if expected else {}
        cs.append(case(cid, jsrc, fs, spec, want, note, True, **extra))

    def jp(name, outer=False, join_on="$1", glob="/(*)", group_by=None):
        kw = {"join_on": join_on}
        if outer:
            kw["outer_join"] = True
        if group_by is not None:
            kw["group_by"] = group_by
        return pfs(name, name, glob, **kw)

    j("join-inner-two", {"join": [jp("a"), jp("b")]},
      [[("a", "/2"), ("b", "/2")], [("a", "/3"), ("b", "/3")]], "Inner join: keys on both sides only.")
    j("join-inner-three", {"join": [jp("a"), jp("b"), jp("c")]}, [[("a", "/3"), ("b", "/3"), ("c", "/3")]],
      "Three-way inner join: only key 3 is everywhere.")
    j("join-three-one-outer", {"join": [jp("a", True), jp("b"), jp("c")]},
      [[("a", "/3"), ("b", "/3"), ("c", "/3")], [("a", "/1")], [("a", "/2")]],
      "For a key missing somewhere, the datum is the cross of the OUTER children that have it: a's 1 and 2.")
    j("join-three-two-outer", {"join": [jp("a", True), jp("b", True), jp("c")]},
      [[("a", "/3"), ("b", "/3"), ("c", "/3")], [("a", "/1")], [("a", "/2"), ("b", "/2")], [("b", "/4")]],
      "Key 2: a and b present (both outer) -> pair; key 4: b and c present, only b outer -> b alone; "
      "key 5: only c (inner) -> none.")
    j("join-three-all-outer", {"join": [jp("a", True), jp("b", True), jp("c", True)]},
      [[("a", "/1")], [("a", "/2"), ("b", "/2")], [("a", "/3"), ("b", "/3"), ("c", "/3")],
       [("b", "/4"), ("c", "/4")], [("c", "/5")]], "Full outer join over three inputs.")
    j("join-literal-key", {"join": [jp("a", join_on="k"), jp("b", join_on="k")]},
      [[("a", f"/{x}"), ("b", f"/{y}")] for x in (1, 2, 3) for y in (2, 3, 4)],
      "join_on without '$' is a literal key, the same for every file.")
    j("join-missing-group-expands-empty", {"join": [jp("a", join_on="$7"), jp("b", join_on="${9}")]},
      [[("a", f"/{x}"), ("b", f"/{y}")] for x in (1, 2, 3) for y in (2, 3, 4)],
      "A capture number the glob does not have expands to '' (regexp.Expand).")
    kx = {"a": files(["/1", "/2", "/3"]), "b": files(["/1x", "/2x", "/3$x", "/x"])}
    rsrc = f"{OMG}:glob.go (Replace/extract: only digits follow '$')"
    cs.append(case("join-template-digits-then-letter", rsrc, kx,
                   {"join": [jp("a", join_on="$1x"), jp("b")]},
                   [[("a", "/1"), ("b", "/1x")], [("a", "/2"), ("b", "/2x")]],
                   "ohmyglob's Replace reads only digits after '$': '$1x' is capture 1 then 'x' (Go's "
                   "regexp.Expand would read the name '1x' and give '').", True))
    cs.append(case("join-template-dollar-non-digit", rsrc, kx,
                   {"join": [jp("a", join_on="$1$x"), jp("b")]}, [[("a", "/3"), ("b", "/3$x")]],
                   "'$' not followed by a digit or '{digits}' is literal: '$1$x' on /3 is '3$x'.", True))
    dup = {"a": files(["/k-1", "/k-2", "/j-1"]), "b": files(["/k-x", "/k-y", "/m-z"])}
    j("join-duplicate-keys-cross", {"join": [jp("a", glob="/(*)-*"), jp("b", glob="/(*)-*")]},
      [[("a", p), ("b", q)] for p in ("/k-1", "/k-2") for q in ("/k-x", "/k-y")],
      "Two files per side with key k: the cross of them, 4 datums.", dup)
    j("join-outer-one-empty-side", {"join": [jp("a", True), jp("d")]},
      singles("a", ["/1", "/2", "/3"]), "Outer side with an empty partner repo: each of its files alone.",
      {"a": files(["/1", "/2", "/3"]), "d": []})
    j("join-inner-one-empty-side", {"join": [jp("a"), jp("d")]}, [],
      "Inner join with an empty partner: nothing.", {"a": files(["/1", "/2", "/3"]), "d": []}, EMPTY_D)
    j("join-over-cross-splits-files", {"join": [{"cross": [jp("a"), jp("x")]}, jp("b")]},
      [[("a", "/2"), ("b", "/2")], [("a", "/3"), ("b", "/3")]],
      "A join child that is a cross is split into its files, each keyed by its own join_on "
      "(processKeyTask iterates meta.Inputs); x's only file has key 'x', absent from b, so no datum holds it.",
      {"a": files(["/1", "/2", "/3"]), "x": files(["/x"]), "b": files(["/2", "/3", "/4"])})
    j("join-dirs-and-files", {"join": [jp("a", glob="/*/(*)"), jp("b", glob="/(*)")]},
      [[("a", "/d/2"), ("b", "/2")], [("a", "/e/3/"), ("b", "/3")]],
      "A directory match joins like a file: its key comes from the path without the trailing '/'.",
      {"a": files(["/d/2", "/e/3/z"]), "b": files(["/2", "/3", "/4"])})
    j("join-nested-in-cross", {"cross": [{"join": [jp("a"), jp("b")]}, pfs("c", "c", "/5")]},
      [[("a", "/2"), ("b", "/2"), ("c", "/5")], [("a", "/3"), ("b", "/3"), ("c", "/5")]],
      "A join inside a cross: each join datum crossed with c's datum.")
    j("join-in-union", {"union": [{"join": [jp("a"), jp("b")]}, pfs("c", "c", "/*")]},
      [[("a", "/2"), ("b", "/2")], [("a", "/3"), ("b", "/3")], [("c", "/3")], [("c", "/4")], [("c", "/5")]],
      "Union of a join (2 datums) and a plain input (3).")
    j("join-over-cross-duplicates-collapse", {"join": [{"cross": [jp("a"), jp("x")]}, jp("c")]},
      [[("x", "/9"), ("c", "/9")]],
      "x's only file /9 is in both cross datums, so the join key '9' holds it twice; the two identical "
      "datums (x:/9, c:/9) have one datum id and are stored once (meta/<datum id>).",
      {"a": files(["/1", "/2"]), "x": files(["/9"]), "c": files(["/9"])})
    cs.append(case("group-over-cross-keeps-repeats", f"{PACH}:src/server/worker/datum/worker.go:198-228 (processKeyTask) + 266-272",
                   {"a": files(["/1", "/2"]), "x": files(["/9"])},
                   {"group": [{"cross": [pfs("a", "a", "/(*)", group_by="g"), pfs("x", "x", "/(*)", group_by="g")]}]},
                   [[("a", "/1"), ("a", "/2"), ("x", "/9"), ("x", "/9")]],
                   "The key task writes every input of every child datum under its key, with no de-duplication: "
                   "x:/9 is in both cross datums, so the one group datum lists it twice. Read from code, "
                   "untested upstream.", True))
    j("join-outer-several-files-one-side", {"join": [jp("a", True, glob="/(*)-*"), jp("b")]},
      [[("a", "/k-1")], [("a", "/k-2")], [("a", "/m-1"), ("b", "/m")]],
      "Key k is only on the outer side, with two files: the cross over the present outer children gives "
      "one datum per file (newCrossListIterator).", {"a": files(["/k-1", "/k-2", "/m-1"]), "b": files(["/m"])})
    j("join-over-union-pools-files", {"join": [{"union": [pfs("u", "a", "/(*)", join_on="$1"),
                                                          pfs("u", "b", "/(*)", join_on="$1")]}, jp("c")]},
      [[("u", "/3"), ("c", "/3")], [("u", "/3"), ("c", "/3")], [("u", "/4"), ("c", "/4")]],
      "A union child pools its branches' files: key 3 has a:/3 and b:/3 (both named u), each paired with "
      "c:/3 (two datums, different ids since the repos differ); key 4 only b:/4.", ab)
    g_ = f"{PACH}:src/server/worker/datum/worker.go:266-272 (group merge)"
    cs.append(case("group-two-inputs-outer-merge", g_, ab,
                   {"group": [jp("a", join_on="", group_by="$1"), jp("c", join_on="", group_by="$1")]},
                   [[("a", "/1")], [("a", "/2")], [("a", "/3"), ("c", "/3")], [("c", "/4")], [("c", "/5")]],
                   "Group is a full outer merge: every key from any child is a datum.", True))
    cs.append(case("group-of-union", g_, ab,
                   {"group": [{"union": [pfs("u", "a", "/(*)", group_by="$1"), pfs("u", "b", "/(*)", group_by="$1")]}]},
                   [[("u", "/1")], [("u", "/2"), ("u", "/2")], [("u", "/3"), ("u", "/3")], [("u", "/4")]],
                   "A group over a union regroups the union's files by key (repos a and b, one name).", True))
    cs.append(case("group-template-literal-text", g_, {"a": files(["/x-1.txt", "/x-2.txt", "/y-1.txt"])},
                   {"group": [pfs("a", "a", "/(*)-(*).txt", group_by="key-$2")]},
                   [[("a", "/x-1.txt"), ("a", "/y-1.txt")], [("a", "/x-2.txt")]],
                   "group_by templates keep literal text around $n.", True))
    u = f"{PACH}:src/server/worker/datum/create.go (createUnion / createCross)"
    cs.append(case("cross-three-way", u, ab, {"cross": [pfs("a", "a", "/*"), pfs("b", "b", "/*"), pfs("c", "c", "/*")]},
                   [[("a", f"/{x}"), ("b", f"/{y}"), ("c", f"/{z}")] for x in (1, 2, 3) for y in (2, 3, 4) for z in (3, 4, 5)],
                   "3 x 3 x 3 = 27.", True))
    cs.append(case("cross-same-repo-root-and-star", u, ab, {"cross": [pfs("whole", "a", "/"), pfs("each", "a", "/*")]},
                   [[("whole", "/"), ("each", f"/{x}")] for x in (1, 2, 3)],
                   "One repo under two names: '/' crossed with '/*'.", True))
    cs.append(case("union-nested", u, ab,
                   {"union": [{"union": [pfs("a", "a", "/1"), pfs("b", "b", "/4")]}, pfs("c", "c", "/5")]},
                   [[("a", "/1")], [("b", "/4")], [("c", "/5")]], "Nested unions flatten.", True))
    cs.append(case("cross-of-union-and-join", u, ab,
                   {"cross": [{"union": [pfs("a", "a", "/1"), pfs("b", "b", "/4")]},
                              {"join": [jp("c"), pfs("d", "a", "/(*)", join_on="$1")]}]},
                   [[("a", "/1"), ("c", "/3"), ("d", "/3")], [("b", "/4"), ("c", "/3"), ("d", "/3")]],
                   "Union (2) x join (key 3 only: 1) = 2.", True))
    cs.append(case("union-empty-branch", u, {"a": files(["/1"]), "d": []},
                   {"union": [pfs("a", "a", "/*"), pfs("d", "d", "/*")]}, [[("a", "/1")]],
                   "An empty branch adds nothing to a union.", True, expected=EMPTY_D))
    cs.append(case("pfs-input-other-branch", f"{PACH}:src/pps/pps.proto:100-128 (PFSInput.branch)",
                   {"data": []}, pfs("data", "data", "/*", branch="dev"), [[("data", "/x")]],
                   "The input reads its own branch only.", True,
                   expected={"steps": [{"commit": {"data@dev": [{"put": "/x", "content": "1"}],
                                                   "data": [{"put": "/y", "content": "2"}]}}]}))
    cs.append(case("cron-input-datums", f"{PACH}:src/server/pps/server/api_server.go (create.go:365-374: a cron input is glob '/*' on <pipeline>_<name>@master)",
                   {"conformance_time": files(["/2025-01-09T14:41:45Z", "/2025-01-09T14:41:55Z"], "")},
                   {"cron": {"name": "time", "spec": "@every 10s"}},
                   [[("time", "/2025-01-09T14:41:45Z")], [("time", "/2025-01-09T14:41:55Z")]],
                   "Each tick file of the cron repo (default name <pipeline>_<input name>; the pipeline here is "
                   "'conformance') is one datum.", True))
    cs.append(case("group-and-join-over-empty", u, {"a": files(["/1"]), "d": []},
                   {"union": [{"group": [pfs("g", "d", "/(*)", group_by="$1")]},
                              {"join": [pfs("j", "d", "/(*)", join_on="$1"), pfs("k", "a", "/(*)", join_on="$1")]}]},
                   [], "A group over an empty repo and an inner join with an empty side: no datums.", True,
                   expected=EMPTY_D))
    cs.append(case("empty-commit-root-glob", f"{PACH}:src/internal/storage/fileset/dir_inserter.go (semantics §2 Empty inputs)",
                   {"data": []}, pfs("data", "data", "/"), [],
                   "A commit with no files has no root entry: glob '/' gives zero datums.", True,
                   expected={"steps": [{"commit": {"data": []}}]}))
    return cs


# --------------------------------------------------------------------------------------- ohmyglob

_ROW = re.compile(r'glob\((true|false),\s*("(?:[^"\\]|\\.)*"|`[^`]*`),\s*("(?:[^"\\]|\\.)*"|`[^`]*`)((?:,\s*\'(?:[^\'\\]|\\.)\')*)\)')
_CAP = re.compile(r'capture\(((?:"(?:[^"\\]|\\.)*"(?:,\s*)?)+)\)')
_REP = re.compile(r'replace\(("(?:[^"\\]|\\.)*"),\s*("(?:[^"\\]|\\.)*"),\s*("(?:[^"\\]|\\.)*"),\s*("(?:[^"\\]|\\.)*")\)')
_STR = re.compile(r'"(?:[^"\\]|\\.)*"')


def _go_str(lit: str) -> str:
    if lit.startswith("`"):
        return lit[1:-1]
    return ast.literal_eval(lit)


def go_clean(p: str) -> str:
    """Go's path.Clean on '/'+p (independent of the code under test)."""
    out: list[str] = []
    for part in ("/" + p).split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/" + "/".join(out)


def literal_prefix(glob: str) -> str:
    """storage.GlobLiteralPrefix: the glob up to its first [*?[\\]{}!()@+^] (escapes not understood)."""
    idx = next((i for i, ch in enumerate(glob) if ch in GLOB_CHARS), len(glob))
    return glob[:idx]


def storable(path: str) -> bool:
    """storage.ValidateFilename plus 'put file would not rewrite it'."""
    if not path.startswith("/") or path == "/" or path.endswith("/") or "//" in path:
        return False
    if any(not (" " <= ch <= "~") for ch in path) or GLOB_CHARS & set(path):
        return False
    return all(part not in (".", "..") for part in path.split("/")[1:])


def _git_show(repo: pathlib.Path, name: str) -> str:
    return subprocess.run(["git", f"--git-dir={repo}", "show", f"HEAD:{name}"], check=True,
                          capture_output=True, text=True).stdout


def ohmyglob_cases(repo: pathlib.Path) -> tuple[list[dict], dict]:
    rows: OrderedDict[tuple[str, str, str], dict[str, tuple[bool, str]]] = OrderedDict()
    skipped = {"separator": 0, "fixture": 0, "pattern": 0}
    for name in ("glob_test.go", "extglob_test.go"):
        text = _git_show(repo, name)
        for m in _ROW.finditer(text):
            should = m.group(1) == "true"
            pattern, fixture = _go_str(m.group(2)), _go_str(m.group(3))
            seps = re.findall(r"'((?:[^'\\]|\\.))'", m.group(4) or "")
            func = text[:m.start()].rsplit("func ", 1)[1].split("(", 1)[0]
            mode = ""
            if seps == ["."] and "/" not in pattern + fixture:
                # '.' as the separator on strings without '/' is '/' as the separator on the strings
                # with '.' and '/' swapped: the grammar gives neither character a meaning of its own
                swap = str.maketrans("./", "/.")
                pattern, fixture, mode = pattern.translate(swap), fixture.translate(swap), " ('.'->'/')"
            elif seps and seps != ["/"]:
                skipped["separator"] += 1
                continue
            elif not seps and "/" in fixture:
                skipped["separator"] += 1  # the test used no separator; Pachyderm always uses '/'
                continue
            if not storable("/" + fixture):
                skipped["fixture"] += 1
                continue
            if not pattern or go_clean(pattern) != "/" + pattern:
                skipped["pattern"] += 1
                continue
            # a fixture holding '/' brings directories the table says nothing about: files only
            # (and one repo per such fixture: '/a/b' and '/a/b/c' cannot both be stored)
            key = (pattern, fixture if "/" in fixture else "", mode)
            rows.setdefault(key, {})
            prev = rows[key].get(fixture)
            if prev and prev[0] != should:
                raise SystemExit(f"conflicting rows for {pattern!r} {fixture!r}")
            rows[key][fixture] = (should, f"{name} {func}{mode}")
    cs = []
    for (pattern, fixture_key, mode), fx in rows.items():
        files_only = bool(fixture_key)
        tests = sorted({t for _s, t in fx.values()})
        # GlobFile only reads paths starting with the glob's raw literal prefix (see the semantics cases)
        prefix = literal_prefix("/" + pattern)
        want = sorted("/" + f for f, (s, _t) in fx.items() if s and ("/" + f).startswith(prefix))
        cut = sorted("/" + f for f, (s, _t) in fx.items() if s and not ("/" + f).startswith(prefix))
        # ids stay stable when rows are added: a hash of what the case is about
        digest = hashlib.sha1(repr((pattern, fixture_key, mode)).encode()).hexdigest()[:8]
        cs.append(case(f"ohmyglob-{digest}", f"{OMG}:{', '.join(tests)} pattern {pattern!r}",
                       {"data": files(sorted("/" + f for f in fx), "x")}, pfs("data", "data", "/" + pattern),
                       singles("data", want),
                       f"Rows of ohmyglob's table for {pattern!r} (separator '/'): "
                       + "; ".join(f"{f!r}->{'match' if s else 'no match'}" for f, (s, _t) in fx.items())
                       + (f". GlobFile's literal prefix {prefix!r} leaves out {cut}" if cut else ""),
                       bool(cut), kind="glob"))
        if files_only:
            cs[-1]["files_only"] = True
            cs[-1]["notes"] += ". Only file datums are compared: the directories above the fixtures are not in the table."
    # capture / replace tables -> joins: repo 'a' holds the fixture, repo 'k' holds the expected key
    text = _git_show(repo, "capture_test.go")
    n = 0
    for m in _CAP.finditer(text):
        args = [_go_str(s) for s in _STR.findall(m.group(1))]
        pattern, fixture, subs = args[0], args[1], args[2:]
        if not subs or not storable("/" + fixture) or go_clean(pattern) != "/" + pattern:
            continue
        template = "-".join(f"${i + 1}" for i in range(len(subs)))
        key = "-".join(subs)
        cs.append(_key_case(f"ohmyglob-capture-{n:02d}", f"{OMG}:capture_test.go TestCaptureGlob",
                            pattern, fixture, template, key, f"captures {subs!r}"))
        n += 1
    for m in _REP.finditer(text):
        pattern, fixture, template, result = (_go_str(m.group(k)) for k in range(1, 5))
        if not storable("/" + fixture) or go_clean(pattern) != "/" + pattern:
            continue
        if "$0" in template:
            result = "/" + result  # $0 is the whole match, which Pachyderm takes on the full path
        cs.append(_key_case(f"ohmyglob-replace-{n:02d}", f"{OMG}:capture_test.go TestReplaceGlob",
                            pattern, fixture, template, result, f"Replace with {template!r} gives {result!r}"))
        n += 1
    return cs, skipped


def _key_case(cid, source, pattern, fixture, template, key, what) -> dict:
    """Join the fixture (glob '/<pattern>', join_on template) with a file whose name is the key."""
    if key == "":
        # '$9' names no capture of '/*' and expands to '' (a join_on of '' would do the same)
        kspec, kfile, kjoin = "/*", "/empty-key", "$9"
    elif key.startswith("/"):
        kspec, kfile, kjoin = "/k(**)", "/k" + key, "$1"
    else:
        kspec, kfile, kjoin = "/(**)", "/" + key, "$1"
    inp = {"join": [pfs("a", "a", "/" + pattern, join_on=template), pfs("k", "k", kspec, join_on=kjoin)]}
    # the key repo's glob also sees the directories above a nested key file; their keys differ
    return case(cid, source, {"a": files(["/" + fixture]), "k": files([kfile])}, inp,
                [[("a", "/" + fixture), ("k", kfile)]],
                f"{what}: the join key of /{fixture} under '/{pattern}' with join_on {template!r} is {key!r}, "
                "so it pairs with the key repo's file of that name.", True, kind="glob")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ohmyglob", type=pathlib.Path, default=pathlib.Path("/work/.mirror/pachyderm+ohmyglob/repo/.git"),
                    help="git dir of pachyderm/ohmyglob (the fetch tool's mirror)")
    args = ap.parse_args()
    cases = pachyderm_cases() + job_cases() + semantics_cases() + error_cases()
    omg, skipped = ohmyglob_cases(args.ohmyglob)
    cases += omg
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    doc = {
        "schema": {
            "id": "unique case id",
            "kind": "datum | glob (datum cases from ohmyglob's tables) | job (run the pipeline, check 'expected') | "
                    "error (list datum -f must refuse the input; error_mentions: one of these words is in the message)",
            "source": "repo@commit:path plus the test the case comes from",
            "input_files": "{repo: [{path, content}]}: each repo's files in one commit before the (first) job; "
                           "[] = the repo exists with no commit",
            "input_spec": "the pipeline 'input' (Pachyderm 2.x snake_case)",
            "expected_datums": "datums of the last state: each a list of [input_name, path]; dirs end with '/'",
            "expected_count": "len(expected_datums)",
            "expected.steps": "list of {commit: {repo: [ops]}} applied in order (one commit per repo per step; "
                              "ops put/append/delete) and, for job cases, checks after the job of that step",
            "expected (job)": "transform, spec (extra spec fields), job_state, job {counter: n}, output {path: "
                              "content} (exact), output_files [paths] (exact), output_file_count, datum_states "
                              "{path of the datum's only file: state}, logs_count {substring: n}, reason_contains; "
                              "step extras: rerun (no commit), update_transform",
            "via": "'glob file': run only through 'pach-airflow glob file' (a pipeline would refuse the input); "
                   "single-input cases are also checked through 'glob file'",
            "files_only": "compare only datums whose paths are files (directory matches are not covered by the source)",
            "derived": "true if worked out from a count, a code reading or the reference (see notes)",
        },
        "snapshot": f"{PACH} and {OMG}",
        "ohmyglob_rows_left_out": skipped,
        "cases": cases,
    }
    # one case per line: the file stays small (file lists repeat) and a diff still shows case by case
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"}, indent=1, ensure_ascii=False)
    body = ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases)
    OUT.write_text(head[:-2] + ',\n "cases": [\n' + body + "\n ]\n}\n")
    kinds: dict[str, int] = {}
    for c in cases:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    print(f"wrote {OUT}: {len(cases)} cases {kinds}; ohmyglob rows left out: {skipped}")


if __name__ == "__main__":
    main()
