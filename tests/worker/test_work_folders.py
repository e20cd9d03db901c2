"""The local runner's work folders: a cleaner never removes a folder in use, at any point of its creation.

Interleavings are forced through ``runners.local._race_hook`` (named points of the claim / clean protocol),
not left to timing: each test runs a cleaner exactly where the race used to be.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from pach_airflow.runners import local
from pach_airflow.runners.local import _claim_work_folder, _clean_stale, _release_work_folder, run_set


@pytest.fixture
def hook(monkeypatch):
    calls: list[tuple[str, Path]] = []
    actions: dict[str, object] = {}

    def fire(point: str, path: Path) -> None:
        calls.append((point, path))
        act = actions.pop(point, None)
        if act is not None:
            act(path)  # type: ignore[operator]

    monkeypatch.setattr(local, "_race_hook", fire)
    return calls, actions


def _root() -> Path:
    root = Path(os.environ["PACH_AIRFLOW_WORK_ROOT"])
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.parametrize("point", ["claimed", "locked", "created"])
def test_a_cleaner_at_any_point_of_the_claim_leaves_the_folder_alone(hook, point):
    _calls, actions = hook
    root = _root()
    seen: list[list[str]] = []

    def clean_now(path: Path) -> None:
        _clean_stale(root)
        seen.append(sorted(os.listdir(root)))
        assert path.exists(), f"the cleaner removed {path.name} at point {point!r}"

    actions[point] = clean_now
    work, fd = _claim_work_folder(root, "p-0-")
    try:
        assert seen, "the hook did not fire"
        assert work.is_dir() and (root / (work.name + ".lock")).exists()
        _clean_stale(root)  # and once more with the folder complete
        assert work.is_dir()
    finally:
        _release_work_folder(work, fd, keep=False)
    local.wait_for_deletions()
    assert os.listdir(root) == []


def test_a_claim_taken_by_a_cleaner_before_it_is_locked_is_retried(hook):
    """A cleaner may lock and unlink a claim file its runner has created but not yet locked (the old race,
    on a private name now): the runner notices at ``link()`` and claims again."""
    calls, actions = hook
    root = _root()
    actions["claimed"] = lambda path: os.unlink(path)  # what such a cleaner leaves behind
    work, fd = _claim_work_folder(root, "p-0-")
    try:
        assert [p for p, _ in calls].count("claimed") == 2  # the first claim was lost, the second won
        assert work.is_dir()
        lock = root / (work.name + ".lock")
        st, now = os.fstat(fd), os.stat(lock)
        assert (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)  # we hold the published lock itself
        probe = os.open(lock, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(probe)
    finally:
        _release_work_folder(work, fd, keep=False)


def test_a_cleaner_during_a_real_set_keeps_its_folder(hook, sets, local_store):
    """A whole run_set with a cleaner let loose right after the folder appears: the set still succeeds."""
    calls, actions = hook
    root = _root()
    actions["created"] = lambda path: _clean_stale(root)
    sets.repo("data", {"/a": "1", "/b": "2"})
    job = sets.job({"cmd": ["cp", "-r", "/pfs/data/.", "/pfs/out/"]},
                   [[[sets.input("data", "data", "/a")], [sets.input("data", "data", "/b")]]])
    summary = run_set(local_store, "p", job, "0")
    assert summary["SUCCESS"] == 2
    assert "created" in [p for p, _ in calls]
    local.wait_for_deletions()
    assert os.listdir(root) == []


def test_stale_leftovers_are_removed_and_kept_or_held_folders_are_not():
    root = _root()
    # A dead runner's folder: its lock file is free.
    (root / "p-0-0000dead").mkdir()
    (root / "p-0-0000dead" / "x").write_text("x")
    (root / "p-0-0000dead.lock").write_text("1\n")
    # A live runner's folder: its lock is held (flock is per open file, so this process counts as another).
    (root / "p-0-0000beef").mkdir()
    live_fd = os.open(root / "p-0-0000beef.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(live_fd, fcntl.LOCK_EX)
    # A lock whose runner died before making its folder, an unpublished claim.
    (root / "p-1-0000abcd.lock").write_text("1\n")
    (root / ".claim-0123456789abcdef").write_text("")
    # A kept folder (no lock at all) and folders of the previous layout (lock inside).
    (root / "p-3-kept").mkdir()
    (root / "p-4-legacy-dead").mkdir()
    (root / "p-4-legacy-dead" / ".lock").write_text("1\n")
    (root / "p-4-legacy-kept").mkdir()
    (root / "p-4-legacy-kept" / ".lock").write_text("")
    # Things of other programs in a shared work root: not ours to touch.
    (root / "other.lock").write_text("")
    (root / ".trash-mine").mkdir()
    try:
        _clean_stale(root)
        assert sorted(os.listdir(root)) == [".trash-mine", "other.lock", "p-0-0000beef",
                                              "p-0-0000beef.lock", "p-3-kept", "p-4-legacy-kept"]
    finally:
        os.close(live_fd)
    _clean_stale(root)
    assert sorted(os.listdir(root)) == [".trash-mine", "other.lock", "p-3-kept", "p-4-legacy-kept"]


def test_keep_leaves_the_folder_without_a_lock_and_cleaners_spare_it(sets, local_store):
    root = _root()
    sets.repo("data", {"/a": "1"})
    job = sets.job({"cmd": ["true"]}, [[[sets.input("data", "data", "/a")]]])
    run_set(local_store, "p", job, "0", keep=True)
    (kept,) = os.listdir(root)
    assert (root / kept / "shim.sh").exists()
    _clean_stale(root)
    assert os.listdir(root) == [kept]
