"""``pach-airflow validate FILE...`` and ``pach-airflow version``.

``validate`` checks spec files before they land in ``dags/``: every problem of every file, one line each
on stderr, exit 1 on any; ``-o json|yaml`` prints the normalised specs (defaults filled in). Neither
command imports Airflow; ``version`` reads installed versions from package metadata only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pach_airflow.cli import arg, command

if TYPE_CHECKING:  # pydantic models: imported for the type checker only, the CLI must start fast
    from pach_airflow.spec import PipelineSpec

SPEC_SUFFIXES = (".json", ".yaml", ".yml")


def _spec_files(target: str) -> list[str]:
    """``target`` itself, or the spec files below it when it is a directory (sorted)."""
    path = Path(target)
    if target == "-" or not path.is_dir():
        return [target]
    return sorted(str(p) for p in path.rglob("*")
                  if p.suffix in SPEC_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


@command("validate", help="check pipeline spec files (JSON or YAML) the way create pipeline would",
         args=[arg("files", nargs="+", metavar="FILE",
                   help="spec files, directories of them, or - for stdin"),
               arg("-o", "--output", choices=("text", "json", "yaml"), default="text",
                   help="text: one ok line per spec (default); json: the normalised specs, one JSON "
                        "object per line; yaml: the normalised specs as YAML documents")])
def validate_cmd(ns: argparse.Namespace) -> int:
    from pach_airflow.errors import SpecError
    from pach_airflow.spec import dump_spec, load_specs, parse_specs, spec_warnings

    problems: list[str] = []
    valid: list[tuple[str, PipelineSpec]] = []
    first_file: dict[str, str] = {}
    files = [f for target in ns.files for f in _spec_files(target)]
    if not files:
        problems.append(f"{' '.join(ns.files)}: no spec files (*.json, *.yaml, *.yml) found")
    for source in files:
        try:
            if source == "-":
                source = "<stdin>"
                specs = parse_specs(sys.stdin.read(), source)
            else:
                specs = load_specs(source)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        for spec in specs:
            name = spec.pipeline.name
            if name in first_file and first_file[name] != source:
                # One DAG per pipeline: two files may not define the same one.
                problems.append(f"{source}: pipeline {name}: pipeline.name: also defined in {first_file[name]}")
                continue
            first_file.setdefault(name, source)
            valid.append((source, spec))
            for loc, msg in spec_warnings(spec):
                print(f"warning: {source}: pipeline {name}: {loc}: {msg}", file=sys.stderr)
    if ns.output == "json":
        import json

        for _, spec in valid:
            print(json.dumps(dump_spec(spec)))
    elif ns.output == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump_all([dump_spec(s) for _, s in valid], sort_keys=False,
                                            explicit_start=True) if valid else "")
    else:
        for source, spec in valid:
            print(f"ok: {source}: pipeline {spec.pipeline.name}")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


@command("version", help="print the versions of pach-airflow and Airflow",
         args=[arg("-o", "--output", choices=("text", "json"), default="text",
                   help="text (default) or json")])
def version_cmd(ns: argparse.Namespace) -> int:
    from importlib import metadata

    import pach_airflow

    # getattr: an editable install made before pach_airflow/__init__.py existed loads the package as a
    # namespace package without __version__; the installed metadata still knows the version.
    ours = getattr(pach_airflow, "__version__", None) or metadata.version("pach-airflow")
    versions = {"pach-airflow": ours}
    # Read from package metadata: importing Airflow would cost seconds.
    for dist in ("apache-airflow", "apache-airflow-providers-cncf-kubernetes"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    if ns.output == "json":
        import json

        print(json.dumps(versions))
        return 0
    for dist, ver in versions.items():
        print(f"{dist} {ver or '(not installed)'}")
    return 0
