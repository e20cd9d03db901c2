"""The versioned data store (PFS): repos → branches → immutable commits → content-addressed files.

One store per deployment, named by a URL (``file:///dir`` or ``s3://bucket/prefix``); see
``store.py`` for the key layout and guarantees, ``manifest.py`` for the manifest format,
``backend.py``/``s3.py`` for the object stores and ``paths.py`` for names and ``repo@branch:/path``.
"""

from __future__ import annotations

from pach_airflow.pfs.backend import Backend, LocalBackend, open_backend
from pach_airflow.pfs.info import BranchInfo, CommitInfo, FileInfo, RepoInfo
from pach_airflow.pfs.paths import (
    clean_path,
    parse_file_ref,
    validate_branch_name,
    validate_output_path,
    validate_repo_name,
)
from pach_airflow.pfs.store import DEFAULT_STORE_URL, OpenCommit, Store, new_commit_id, open_store, store_url

__all__ = [
    "DEFAULT_STORE_URL",
    "Backend",
    "BranchInfo",
    "CommitInfo",
    "FileInfo",
    "LocalBackend",
    "OpenCommit",
    "RepoInfo",
    "Store",
    "clean_path",
    "new_commit_id",
    "open_backend",
    "open_store",
    "parse_file_ref",
    "store_url",
    "validate_branch_name",
    "validate_output_path",
    "validate_repo_name",
]
