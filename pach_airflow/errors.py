"""The exception tree of pach_airflow.

Every error the project raises on purpose derives from :class:`PachAirflowError`, so callers (the CLI,
the Airflow tasks) can tell a user mistake from a bug. Messages name the thing that is wrong and,
where there is one, the fix.

::

    PachAirflowError
    ├── SpecError               one or more problems in pipeline spec files
    ├── StoreError              the versioned data store (pach_airflow.pfs)
    │   ├── InvalidName         a repo, branch or commit name Pachyderm would refuse
    │   ├── InvalidPath         a file path Pachyderm would refuse ('..', NUL, glob characters in outputs)
    │   ├── NotFound            a repo, branch, commit, file or record that does not exist
    │   ├── AlreadyExists       creating something that is there already
    │   ├── Conflict            a compare-and-swap lost too many times, or a commit that is not open
    │   └── BackendError        the object store itself failed (permanent error, bucket and key named)
    ├── GlobError               a glob pattern that does not compile
    ├── DatumError              inputs that cannot be cut into datums (bad join_on/group_by, missing commit)
    ├── JobError                a job that cannot be planned, run or finished (bad conf, output clash)
    └── RunnerError             a runner that cannot run here (no mount namespace, no busybox, no podman)
"""

from __future__ import annotations


class PachAirflowError(Exception):
    """Base of every error pach_airflow raises on purpose."""


class SpecError(PachAirflowError):
    """Problems found in pipeline specs; ``problems`` holds one line per problem.

    Each line reads ``<file>: pipeline <name>: <field path>: <message>``.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class StoreError(PachAirflowError):
    """Base of the errors of the versioned data store."""


class InvalidName(StoreError):
    """A repo, branch or commit name that Pachyderm would refuse."""


class InvalidPath(StoreError):
    """A file path that Pachyderm would refuse."""


class NotFound(StoreError):
    """A repo, branch, commit, file or record that does not exist."""


class AlreadyExists(StoreError):
    """Creating a repo, branch or record that exists already."""


class Conflict(StoreError):
    """A concurrent update could not be applied (compare-and-swap lost too often, commit not open)."""


class BackendError(StoreError):
    """The object store failed for good; the message names the bucket (or folder) and key."""


class GlobError(PachAirflowError):
    """A glob pattern that does not compile."""


class DatumError(PachAirflowError):
    """Inputs that cannot be cut into datums."""


class JobError(PachAirflowError):
    """A job that cannot be planned, run or finished."""


class RunnerError(PachAirflowError):
    """A runner that cannot run on this machine, with the reason."""
