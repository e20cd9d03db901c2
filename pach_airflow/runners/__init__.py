"""Runners: where a datum set's stage → shim → upload happens.

* :mod:`pach_airflow.runners.local` runs a set on this machine, ``/pfs`` shown through a private mount
  namespace (``run_set``).
* ``pach_airflow.runners.kubernetes`` builds the pods (init container: ``worker stage``; the user's
  image: the shim; sidecar: ``worker upload --wait``) that run the same worker commands.
"""

from __future__ import annotations
