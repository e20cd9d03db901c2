"""The generated shim and the env file format, without a store: quoting, config checks."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pach_airflow.errors import SpecError
from pach_airflow.worker import (
    ShimConfig,
    format_env_file,
    parse_env_file,
    render_shim,
    shim_config,
    timeout_seconds,
)

names = st.text(st.characters(blacklist_characters="=\0", blacklist_categories=("Cs",)), min_size=1, max_size=12)
values = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, values), max_size=6))
def test_env_file_round_trips_in_python(pairs):
    assert parse_env_file(format_env_file(pairs)) == pairs


@settings(max_examples=25, deadline=None)
@given(pairs=st.lists(st.tuples(names, values), min_size=1, max_size=5))
def test_env_file_reads_back_identically_in_busybox_sh(pairs, tmp_path_factory):
    """The shim reads the file with ``eval "set -- $(cat env)"``: every word must come back byte for byte."""
    f = tmp_path_factory.mktemp("env") / "env"
    f.write_text(format_env_file(pairs))
    out = subprocess.run(["/bin/busybox", "sh", "-c", 'eval "set -- $(/bin/busybox cat "$1")"; printf "%s\\0" "$@"',
                          "_", str(f)], capture_output=True, check=True).stdout
    words = out.decode().split("\0")[:-1]
    assert words == [f"{k}={v}" for k, v in pairs]


def test_config_from_spec_and_defaults():
    cfg = shim_config({"transform": {"cmd": ["python3", "x.py"], "stdin": [], "accept_return_code": [0, 3, "4"]},
                       "datum_timeout": "1.5s"})
    assert cfg.datum_tries == 3 and cfg.stdin is None  # an empty stdin is no stdin, as in Pachyderm
    assert cfg.accept_return_code == [3, 4] and cfg.datum_timeout == 1.5
    assert ShimConfig.stdin_bytes(["a", "b"]) == b"a\nb\n"
    assert timeout_seconds(None) is None and timeout_seconds("0s") is None and timeout_seconds(5) == 5.0
    with pytest.raises(SpecError, match="datum_timeout"):
        timeout_seconds("10m")
    with pytest.raises(SpecError, match="datum_tries"):
        shim_config({"transform": {"cmd": ["x"]}, "datum_tries": -1})


def test_shim_quotes_every_user_string():
    nasty = "'; rm -rf / #$(x)`y`\n"
    cfg = ShimConfig(cmd=[nasty, nasty], err_cmd=[nasty], working_dir=nasty)
    script = render_shim(cfg, 2)
    # Parses as a shell script, and the nasty string appears only inside single quotes.
    subprocess.run(["/bin/busybox", "sh", "-n", "-c", script], check=True)
    assert "'\"'\"'; rm -rf / #$(x)`y`\n'" in script


def test_shim_calls_only_busybox_applets():
    """Every command the shim runs for itself goes through $A / $BB (user images may have no shell or coreutils);
    shell builtins (kill, printf, read, test) are busybox sh's own."""
    import re

    script = render_shim(ShimConfig(cmd=["c"], err_cmd=["e"], datum_timeout=3), 1)
    body = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    bare = re.compile(r"(^|[;&|({]\s*|\bthen\s+|\bdo\s+|\belse\s+)(mv|cp|rm|ln|mkdir|cat|date|sleep|timeout|"
                      r"setsid|env|chown|sh)\s")
    offenders = [line for line in body if bare.search(line)]
    assert offenders == []
