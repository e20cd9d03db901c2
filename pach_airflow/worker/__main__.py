"""``python -m pach_airflow.worker [--store URL] stage|upload|run-set ...`` = ``pach-airflow worker ...``."""

import sys

from pach_airflow.cli import main

args = sys.argv[1:]
head = args[:2] if args[:1] == ["--store"] else args[:1] if args[:1] and args[0].startswith("--store=") else []
sys.exit(main([*head, "worker", *args[len(head):]]))
