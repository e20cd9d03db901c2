"""How fast ``pach-airflow`` starts: wall time of ``pach-airflow --help`` (and of ``validate`` on an example
spec) against ``python -c pass`` with the same interpreter, median of several runs, measured in one run.

    .venv/bin/python bench/cli_startup.py [--runs 15] [--spec FILE]

Prints each median and its ratio to the baseline; the aim is ``--help`` under 3x. When a ratio is high,
``python -X importtime -m pach_airflow --help`` shows which import costs the time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall_times(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True,
                       cwd=ROOT)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (median is reported)")
    parser.add_argument("--spec", default=str(ROOT / "tests" / "specs" / "opencv.yaml"),
                        help="spec file for the validate measurement")
    args = parser.parse_args()

    python = sys.executable
    script = shutil.which("pach-airflow", path=str(Path(python).parent)) or "pach-airflow"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    commands = {
        "python -c pass (baseline)": [python, "-c", "pass"],
        "pach-airflow --help": [script, "--help"],
        "pach-airflow version": [script, "version"],
        f"pach-airflow validate {Path(args.spec).name}": [script, "validate", args.spec],
    }
    for argv in commands.values():  # warm the page cache and the .pyc files once
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False, cwd=ROOT)
    medians = {}
    for label, argv in commands.items():
        medians[label] = statistics.median(wall_times(argv, args.runs, env))
    base = medians["python -c pass (baseline)"]
    print(f"{'command':<40} {'median ms':>10} {'ratio':>7}   ({args.runs} runs each)")
    for label, value in medians.items():
        print(f"{label:<40} {value * 1000:>10.1f} {value / base:>6.2f}x")
    help_ratio = medians["pach-airflow --help"] / base
    print(f"\npach-airflow --help / python -c pass = {help_ratio:.2f}x (aim: under 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
