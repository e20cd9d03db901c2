"""Spec files under the dags folder → one DAG per pipeline; putting spec files there safely.

The dag-processor only parses ``.py`` files, so ``dags/pach_airflow_dags.py`` (a few lines) calls
:func:`load_dags`, which finds every ``*.json``/``*.yaml``/``*.yml`` under the dags folder (nested
folders too, ``.airflowignore`` honoured), reads each on its own, and compiles one DAG per pipeline.
Airflow re-parses that file every ``[dag_processor] min_file_process_interval`` even when it has not
changed, so new, changed and deleted specs reach the UI without a restart.

Parse time reads spec files only: no store, no network, no store URL. In a worker (Airflow sets
``get_parsing_context().dag_id``) only the DAG being run is compiled.

**A broken spec never hides the others.**  A file that fails validation becomes a placeholder DAG,
visible in the UI beside the good ones: ``dag_id`` = the pipeline name when the file still names one
(else ``invalid_spec__<file>``), tag ``invalid-spec``, no schedule, docs listing each problem as
``<file>: pipeline <name>: <field>: <message>``, and one task, ``invalid_spec``, that fails with the same
text if someone runs it. Fixing the file turns the placeholder back into the pipeline's DAG (same
``dag_id``, history kept); deleting it removes the DAG. (An import error per spec file was the other
way: Airflow 3.3 only clears an import error when the file that raised it is parsed again, and a
YAML file is never parsed by Airflow itself, so a fixed spec's error would linger until the next bundle
refresh.) Two files defining one pipeline name: the first (in path order) wins, the other becomes a
placeholder saying so.

For the CLI: :func:`install_spec` validates and writes ``<dags_folder>/<pipeline>.yaml`` atomically,
:func:`remove_spec` takes a pipeline out, :func:`set_paused` pauses or unpauses its DAG.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG


log = logging.getLogger(__name__)

SPEC_SUFFIXES = (".json", ".yaml", ".yml")


def _yaml_loader():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: parse time matters


_YAML_LOADER = _yaml_loader()
INVALID_TAG = "invalid-spec"


# -- finding spec files -------------------------------------------------------------------------------

def _ignore_patterns(folder: Path) -> list[str]:
    ignore = folder / ".airflowignore"
    if not ignore.is_file():
        return []
    out = []
    for line in ignore.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _ignored(rel: str, patterns: list[str], syntax: str) -> bool:
    import fnmatch

    for pat in patterns:
        if syntax == "regexp":
            if re.search(pat, rel):
                return True
        elif fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat.rstrip("/") + "/*") or \
                any(fnmatch.fnmatch(part, pat.rstrip("/")) for part in rel.split("/")):
            return True
    return False


def find_spec_files(folder: str | os.PathLike) -> list[Path]:
    """Candidate spec files under ``folder``, sorted: ``*.json``/``*.yaml``/``*.yml``, hidden ones skipped.

    The top-level ``.airflowignore`` is honoured (glob syntax, or regexp when
    ``[core] dag_ignore_file_syntax = regexp``).
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    patterns = _ignore_patterns(root)
    syntax = os.environ.get("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "glob").lower()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(SPEC_SUFFIXES):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if patterns and _ignored(rel, patterns, syntax):
                continue
            found.append(path)
    return sorted(found)


_PIPELINE_KEY = re.compile(r"""(^|[\s{,"'])pipeline["']?\s*:""", re.MULTILINE)


def looks_like_spec(text: str) -> bool:
    """Cheap test: does the text have a ``pipeline:`` key at all? (Other YAML/JSON files are not ours.)"""
    return bool(_PIPELINE_KEY.search(text))


def _pipeline_names(text: str) -> list[str]:
    """Pipeline names a (possibly invalid) spec text declares, best effort, for placeholder DAG ids."""
    import yaml

    names: list[str] = []
    try:
        docs = list(yaml.load_all(text, Loader=_YAML_LOADER))
    except Exception:  # noqa: BLE001 -- best effort: an unparseable file just has no names
        return names
    for doc in docs:
        for item in (doc if isinstance(doc, list) else [doc]):
            if isinstance(item, dict) and isinstance(item.get("pipeline"), dict):
                name = item["pipeline"].get("name")
                if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,50}", name):
                    names.append(name)
    return names


def _declares_pipeline(text: str) -> bool:
    """True when some document of the text has a top-level ``pipeline`` key (YAML/JSON parsed)."""
    import yaml

    try:
        docs = list(yaml.load_all(text, Loader=_YAML_LOADER))
    except Exception:  # noqa: BLE001 -- unparseable but mentions pipeline: report it
        return True
    return any(isinstance(item, dict) and "pipeline" in item
               for doc in docs for item in (doc if isinstance(doc, list) else [doc]))


# -- loading ------------------------------------------------------------------------------------------

@dataclass
class LoadedFile:
    """One spec file's outcome: its pipelines, or the problems that made it a placeholder."""

    path: Path
    rel: str
    specs: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # pipeline names, even when invalid


def read_spec_file(path: Path, rel: str) -> LoadedFile | None:
    """Parse one file; ``None`` when it is not a pipeline spec at all."""
    from pach_airflow.errors import PachAirflowError
    from pach_airflow.spec import parse_specs

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return LoadedFile(path, rel, problems=[f"{rel}: cannot read: {exc}"])
    if not looks_like_spec(text):
        return None
    try:
        specs = parse_specs(text, source=rel)
    except PachAirflowError as exc:
        # Only now pay for a second parse: a YAML/JSON file without a pipeline key is not ours at all.
        if not _declares_pipeline(text):
            return None
        problems = getattr(exc, "problems", None) or [str(exc)]
        return LoadedFile(path, rel, problems=[str(p) for p in problems], names=_pipeline_names(text))
    except Exception as exc:  # noqa: BLE001 -- a bug in parsing must not hide the other specs either
        return LoadedFile(path, rel, problems=[f"{rel}: {type(exc).__name__}: {exc}"], names=_pipeline_names(text))
    return LoadedFile(path, rel, specs=list(specs), names=[s.pipeline.name for s in specs])


def read_spec_folder(folder: str | os.PathLike) -> list[LoadedFile]:
    root = Path(folder)
    out = []
    for path in find_spec_files(root):
        loaded = read_spec_file(path, path.relative_to(root).as_posix())
        if loaded is not None:
            out.append(loaded)
    return out


def _placeholder_id(loaded: LoadedFile) -> str:
    if loaded.names:
        return loaded.names[0]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", loaded.rel)
    return f"invalid_spec__{stem}"[:250]


def compile_placeholder(dag_id: str, source: str, problems: list[str]) -> DAG:
    """A DAG that shows a broken spec in the UI: docs list the problems, its one task fails with them."""
    from airflow.sdk import DAG, task

    from pach_airflow.compiler import START_DATE

    text = "\n".join(problems)
    doc = "\n".join([f"### Invalid pipeline spec `{source}`", "",
                     ("This spec file does not validate, so its pipeline does not run. Fix the file; the DAG "
                      "comes back within Airflow's re-parse interval."), "", "```", text, "```"])
    with DAG(dag_id=dag_id, schedule=None, start_date=START_DATE, catchup=False, doc_md=doc,
             description=f"INVALID SPEC {source}: {problems[0] if problems else ''}"[:200],
             tags=[INVALID_TAG], max_active_runs=1, auto_register=False) as dag:

        @task(task_id="invalid_spec", retries=0)
        def invalid_spec() -> None:
            from pach_airflow.errors import SpecError

            raise SpecError(problems)

        invalid_spec()
    return dag


def _wanted_dag_id() -> str | None:
    try:
        from airflow.sdk import get_parsing_context

        return get_parsing_context().dag_id
    except Exception:  # noqa: BLE001 -- outside a task runner: compile everything
        return None


def default_dags_folder() -> Path:
    folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if not folder:
        from airflow.sdk import conf

        folder = conf.get("core", "dags_folder")
    return Path(folder)


def load_dags(folder: str | os.PathLike | None = None,
              namespace: MutableMapping[str, Any] | None = None) -> dict[str, DAG]:
    """Compile every pipeline spec under ``folder`` (default: the dags folder) into ``namespace``.

    Returns ``{dag_id: DAG}``; with ``namespace`` (the shim's ``globals()``) the DAGs are also put there,
    which is where Airflow looks for them. A spec that fails to compile becomes a placeholder DAG.
    """
    from pach_airflow.errors import PachAirflowError

    started = time.perf_counter()
    root = Path(folder) if folder else default_dags_folder()
    wanted = _wanted_dag_id()
    files = read_spec_folder(root)
    outputs = {(s.pipeline.name, getattr(s, "output_branch", None) or "master") for f in files for s in f.specs}
    dags: dict[str, Any] = {}
    owner: dict[str, str] = {}

    def add(dag_id: str, build) -> None:
        if wanted and dag_id != wanted:
            return
        dags[dag_id] = build()

    from pach_airflow.compiler import compile_pipeline

    for loaded in files:
        if loaded.problems:
            dag_id = _placeholder_id(loaded)
            if dag_id in owner:
                dag_id = f"invalid_spec__{re.sub(r'[^A-Za-z0-9_.-]+', '_', loaded.rel)}"[:250]
            owner[dag_id] = loaded.rel
            add(dag_id, lambda loaded=loaded, dag_id=dag_id: compile_placeholder(dag_id, loaded.rel, loaded.problems))
            continue
        for spec in loaded.specs:
            name = spec.pipeline.name
            if name in owner:
                problems = [(f"{loaded.rel}: pipeline {name}: pipeline.name: defined twice; {owner[name]} "
                             "defines it already (one spec per pipeline name)")]
                dup_id = f"invalid_spec__{re.sub(r'[^A-Za-z0-9_.-]+', '_', loaded.rel)}__{name}"[:250]
                add(dup_id, lambda d=dup_id, p=problems, r=loaded.rel: compile_placeholder(d, r, p))
                continue
            owner[name] = loaded.rel

            def build(spec=spec, rel=loaded.rel, name=name):
                try:
                    return compile_pipeline(spec, source=rel, pipeline_outputs=outputs)
                except PachAirflowError as exc:
                    problems = getattr(exc, "problems", None) or [str(exc)]
                    return compile_placeholder(name, rel, [f"{rel}: pipeline {name}: {p}" for p in problems])
                except Exception as exc:  # a compiler bug must not hide the other pipelines
                    log.exception("pach_airflow: compiling pipeline %s from %s failed", name, rel)
                    return compile_placeholder(name, rel, [(f"{rel}: pipeline {name}: cannot compile: "
                                                            f"{type(exc).__name__}: {exc}")])

            add(name, build)
    if namespace is not None:
        for dag_id, dag in dags.items():
            namespace[f"pach_dag__{dag_id}"] = dag
    log.info("pach_airflow: %d DAG(s) from %d spec file(s) under %s in %.3fs", len(dags), len(files), root,
             time.perf_counter() - started)
    return dags


# -- the CLI's side: installing, removing, pausing ----------------------------------------------------

def _defining_files(dags_folder: Path) -> dict[str, LoadedFile]:
    """pipeline name → the (valid) file that defines it."""
    out: dict[str, LoadedFile] = {}
    for loaded in read_spec_folder(dags_folder):
        for spec in loaded.specs:
            out.setdefault(spec.pipeline.name, loaded)
    return out


def _dump_yaml(specs: list[Any]) -> str:
    import yaml

    from pach_airflow.spec import dump_spec

    return "---\n".join(yaml.safe_dump(dump_spec(s), sort_keys=False) for s in specs)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp name ends in .tmp, so the loader never reads a half-written spec.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def install_specs(spec_path_or_text: str | os.PathLike, dags_folder: str | os.PathLike) -> list[Path]:
    """Validate a spec (file path or text), then write each pipeline's file into the dags folder.

    Each pipeline goes to the file that defines it already, else ``<dags_folder>/<pipeline>.yaml``; a
    file holding just one pipeline keeps the user's text (comments and all), several pipelines are
    split into one normalised file each. Writes are atomic (temp file + ``os.replace``). Nothing is
    written unless every pipeline validates. Raises ``SpecError``.
    """
    from pach_airflow.errors import SpecError
    from pach_airflow.spec import load_specs, parse_specs

    folder = Path(dags_folder)
    candidate = Path(os.fspath(spec_path_or_text)) if not isinstance(spec_path_or_text, str) or (
        "\n" not in spec_path_or_text and len(spec_path_or_text) < 4096) else None
    if candidate is not None and candidate.is_file():
        text = candidate.read_text()
        specs = load_specs(candidate)
    elif isinstance(spec_path_or_text, str) and looks_like_spec(spec_path_or_text):
        text = spec_path_or_text
        specs = parse_specs(text)
    else:
        raise SpecError(f"{spec_path_or_text}: no such spec file")
    if not specs:
        raise SpecError(f"{candidate or '<stdin>'}: no pipeline spec in it")
    existing = _defining_files(folder)
    plans: list[tuple[Path, str]] = []
    for spec in specs:
        name = spec.pipeline.name
        target = folder / f"{name}.yaml"
        if name in existing:
            holder = existing[name]
            if len(holder.specs) > 1:
                raise SpecError(f"{holder.rel}: pipeline {name}: defined in a file with other pipelines; "
                                "edit that file instead, or split it into one file per pipeline")
            target = holder.path
        body = text if len(specs) == 1 else _dump_yaml([spec])
        plans.append((target, body))
    for target, body in plans:
        _atomic_write(target, body)
    return [t for t, _ in plans]


def install_spec(spec_path_or_text: str | os.PathLike, dags_folder: str | os.PathLike) -> Path:
    """:func:`install_specs` for the CLI's ``create/update pipeline``; returns the first file written."""
    return install_specs(spec_path_or_text, dags_folder)[0]


def remove_spec(name: str, dags_folder: str | os.PathLike) -> Path:
    """Take pipeline ``name`` out of the dags folder: delete its file, or rewrite a multi-pipeline file.

    Raises ``NotFound`` when no spec file there defines it.
    """
    from pach_airflow.errors import NotFound

    folder = Path(dags_folder)
    holder = _defining_files(folder).get(name)
    if holder is None:
        raise NotFound(f"pipeline {name}: no spec file under {folder} defines it")
    rest = [s for s in holder.specs if s.pipeline.name != name]
    if rest:
        _atomic_write(holder.path, _dump_yaml(rest))
    else:
        holder.path.unlink()
    return holder.path


def set_paused(pipeline: str, paused: bool) -> None:
    """Pause or unpause the pipeline's DAG in Airflow's metadata database (``stop/start pipeline``).

    Needs the Airflow configuration of the deployment (``AIRFLOW_HOME`` / ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``).
    Raises ``NotFound`` when Airflow has no such DAG yet, ``PachAirflowError`` when Airflow is unreachable.
    """
    from pach_airflow.errors import NotFound, PachAirflowError

    try:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            model = session.get(DagModel, pipeline)
            if model is None:
                raise NotFound(f"pipeline {pipeline}: Airflow has no DAG {pipeline!r} yet; the dag-processor "
                               "adds it within its re-parse interval after the spec lands in the dags folder")
            model.is_paused = paused
    except PachAirflowError:
        raise
    except Exception as exc:
        raise PachAirflowError(f"pipeline {pipeline}: cannot reach Airflow's metadata database to "
                               f"{'pause' if paused else 'unpause'} the DAG: {exc}; set AIRFLOW_HOME (or "
                               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) to the deployment's") from exc


def iter_pipeline_names(folder: str | os.PathLike) -> Iterator[str]:
    for loaded in read_spec_folder(folder):
        yield from (s.pipeline.name for s in loaded.specs)
