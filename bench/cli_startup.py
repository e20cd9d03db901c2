"""How fast ``pach-airflow`` starts: wall time of ``pach-airflow --help`` (and of ``validate`` on an example
spec) against ``python -c pass`` with the same interpreter, median of several runs, measured in one run.

    .venv/bin/python bench/cli_startup.py [--runs 15] [--spec FILE]

Prints each median and its ratio to the baseline; the aim is ``--help`` under 3x. When a ratio is high,
``python -X importtime -m pach_airflow --help`` shows which import costs the time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (median is reported)")
    parser.add_argument("--spec", default=str(ROOT / "tests" / "specs" / "opencv.yaml"),
                        help="spec file for the validate measurement")
    args = parser.parse_args()

    python = sys.executable
    script = shutil.which("pach-airflow", path=str(Path(python).parent)) or "pach-airflow"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # .pyc caches on, as for users
    commands = {
        "python -c pass (baseline)": [python, "-c", "pass"],
        "pach-airflow --help": [script, "--help"],
        "pach-airflow version": [script, "version"],
        f"pach-airflow validate {Path(args.spec).name}": [script, "validate", args.spec],
    }
    for argv in commands.values():  # warm the page cache and the .pyc files once
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False, cwd=ROOT)
    # Round robin: on a shared machine the load drifts, and interleaving lets every command see the same.
    # CPU time is reported too: it moves much less than wall time when other processes compete.
    wall: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(args.runs):
        for label, argv in commands.items():
            w, c = run_once(argv, env)
            wall[label].append(w)
            cpu[label].append(c)
    med_wall = {label: statistics.median(v) for label, v in wall.items()}
    med_cpu = {label: statistics.median(v) for label, v in cpu.items()}
    base_label = "python -c pass (baseline)"
    print(f"{'command':<40} {'wall ms':>9} {'ratio':>7} {'cpu ms':>9} {'ratio':>7}   (median of {args.runs} runs)")
    for label in commands:
        print(f"{label:<40} {med_wall[label] * 1000:>9.1f} {med_wall[label] / med_wall[base_label]:>6.2f}x "
              f"{med_cpu[label] * 1000:>9.1f} {med_cpu[label] / max(med_cpu[base_label], 1e-9):>6.2f}x")
    help_ratio = med_wall["pach-airflow --help"] / med_wall[base_label]
    print(f"\npach-airflow --help / python -c pass = {help_ratio:.2f}x wall time (aim: under 3x); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
