"""The per-datum loop: a POSIX shell script run by a static busybox, generated from a transform.

Owns: turning a pipeline's ``transform`` (cmd, stdin, err_cmd, err_stdin, env, working_dir,
accept_return_code) plus ``datum_tries`` and ``datum_timeout`` into ``WORK/shim.sh``; the exact
behaviour Pachyderm's worker has around user code (``datum.go`` WithDatum/run, ``driver.go``
RunUserCode, ``driver_unix.go`` linkData) lives in that script.

Why a shell script and not Python: the script runs *inside the user's image*, which may have no shell,
no Python, nothing of ours. The init container (or the local runner) puts a static busybox at
``WORK/bin/busybox``; the script calls only ``$A <applet>`` for its own needs, never bare ``mv`` or
``sh``, so it works with any ``PATH``: ``$A`` is empty when this busybox runs applets by name itself
(``FEATURE_SH_STANDALONE``, as Debian's busybox-static does; probed once at start), else ``$BB``. The
user's ``cmd`` is exec'd directly (no shell) with the ``PATH`` of the image/environment, exactly as
Pachyderm does.

Speed: every process the loop starts costs a fork (and an exec unless the applet runs in the forked
shell), which is the shim's whole per-datum cost. The common datum therefore takes three forks and two
execs: ``ln -sf`` (the input links, replaced in place when the datum has the same inputs as the previous
one and ``/pfs`` holds nothing else), the user's code (``setsid`` then ``cmd``; the datum's variables are
exported by the shell when their names allow it, else set by ``env``), and one ``mv`` of what the code
wrote into ``/pfs/out`` (none when it wrote nothing; ``/pfs/out`` itself stays, empty, for the next
datum). Everything else (timing via ``$EPOCHREALTIME``, logs, the symlink walk of ``/pfs/out``,
``/pfs/.env``, the env read from stage's ``vars`` file in one go) is shell builtins.

Per datum ``n`` (``WORK/datums/n``), the script:

1. skips the datum if ``state`` exists (a restarted container resumes where it stopped);
2. per attempt (``datum_tries`` in total, Pachyderm's ``WithRetry(tries-1)``): clears ``/pfs``,
   symlinks ``/pfs/<input>`` to the staged inputs, writes ``/pfs/.env``, makes an empty ``/pfs/out``
   (a fresh one per attempt, as Pachyderm's ``withData`` does), runs ``cmd`` with ``stdin`` in its own
   session (so a timeout, and the end of the code, kill its whole process group), then ``err_cmd``
   after a failed attempt. ``datum_timeout`` bounds the attempt, err_cmd included (Pachyderm runs the
   recovery callback under the same context);
3. records the state: SUCCESS, or RECOVERED when the last attempt failed but an ``err_cmd`` succeeded
   (Pachyderm's flag is sticky across attempts: ``datum.go`` run sets it, ``handleFailed`` reads it),
   or FAILED; moves ``/pfs/out`` to ``out/``; writes ``tries``, ``reason``, ``timing``; appends to ``log``
   lines like Pachyderm's ("errored running user code after 1.02s: exit status 1").

At the end it writes ``WORK/done``. The shim's own exit status is 0 unless it could not work at all
(no ``/pfs``, no busybox): a failed datum is a result, not a crash.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pach_airflow.errors import SpecError

__all__ = ["ShimConfig", "exportable", "render_shim", "shim_config", "timeout_seconds"]

def timeout_seconds(value: Any) -> float | None:
    """Seconds of ``datum_timeout`` (protobuf JSON duration ``"600s"``, parsed by
    :func:`pach_airflow.spec.parse_duration`; a number of seconds or a timedelta also do).
    ``None``, empty or zero means no timeout."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = float(value)
    else:
        from pach_airflow.spec import parse_duration

        try:
            secs = parse_duration(value).total_seconds()
        except ValueError as exc:
            raise SpecError(f"datum_timeout: {exc}") from None
    return secs if secs > 0 else None


class ShimConfig:
    """What the shim needs from a spec, checked and normalised (plain values, no pydantic)."""

    def __init__(self, *, cmd: Sequence[str], stdin: Sequence[str] | None = None,
                 err_cmd: Sequence[str] | None = None, err_stdin: Sequence[str] | None = None,
                 working_dir: str = "", accept_return_code: Sequence[int] = (), datum_tries: int = 3,
                 datum_timeout: float | None = None, user_prefix: Sequence[str] = (),
                 pfs_root: str = "/pfs"):
        if not cmd:
            # driver.go: "no command specified"
            raise SpecError("transform.cmd: no command specified (Pachyderm execs cmd directly; "
                            "write e.g. [\"sh\"] with transform.stdin for a script)")
        self.cmd = [str(c) for c in cmd]
        self.stdin = None if stdin is None else [str(s) for s in stdin]
        self.err_cmd = [str(c) for c in err_cmd] if err_cmd else None
        self.err_stdin = None if err_stdin is None else [str(s) for s in err_stdin]
        self.working_dir = working_dir or ""
        self.accept_return_code = sorted({int(c) for c in accept_return_code or ()} - {0})
        if int(datum_tries) < 1:
            raise SpecError(f"datum_tries: {datum_tries} must be at least 1 (total attempts per datum)")
        self.datum_tries = int(datum_tries)
        self.datum_timeout = datum_timeout
        self.user_prefix = list(user_prefix)
        if not pfs_root.startswith("/") or pfs_root.rstrip("/") == "":
            raise ValueError(f"pfs_root must be an absolute directory, not {pfs_root!r}")
        self.pfs_root = pfs_root.rstrip("/")

    @staticmethod
    def stdin_bytes(lines: Sequence[str] | None) -> bytes | None:
        """driver.go: stdin lines joined with newlines plus a trailing newline."""
        if lines is None:
            return None
        return ("\n".join(lines) + "\n").encode()


def shim_config(spec: Mapping[str, Any], *, user_prefix: Sequence[str] = (), pfs_root: str = "/pfs") -> ShimConfig:
    """A :class:`ShimConfig` from a normalised spec dict (``spec.dump_spec`` output, snake_case)."""
    t = spec.get("transform") or {}
    tries = spec.get("datum_tries")
    return ShimConfig(
        cmd=t.get("cmd") or [],
        # An empty list is no stdin at all, as in Pachyderm (proto: empty repeated == nil).
        stdin=t.get("stdin") or None,
        err_cmd=t.get("err_cmd") or None,
        err_stdin=t.get("err_stdin") or None,
        working_dir=t.get("working_dir") or "",
        accept_return_code=t.get("accept_return_code") or (),
        datum_tries=3 if tries in (None, 0) else int(tries),
        datum_timeout=timeout_seconds(spec.get("datum_timeout")),
        user_prefix=user_prefix,
        pfs_root=pfs_root,
    )


def _q(s: str) -> str:
    return shlex.quote(s)


def _words(items: Sequence[str]) -> str:
    return " ".join(_q(i) for i in items)


# Names the shell treats specially (or refuses to export): a datum env holding one is passed by `env`.
_SHELL_SPECIAL = frozenset({"CDPATH", "ENV", "EPOCHREALTIME", "EPOCHSECONDS", "FUNCNAME", "HISTFILE",
                            "HISTFILESIZE", "HISTSIZE", "HOSTNAME", "IFS", "LINENO", "MAIL", "MAILCHECK",
                            "MAILPATH", "OLDPWD", "OPTARG", "OPTIND", "PATH", "PPID", "PS1", "PS2", "PS3",
                            "PS4", "PWD", "RANDOM", "SECONDS", "SHELL", "SHLVL", "TMOUT", "UID", "EUID",
                            "BB_ASH_VERSION", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_COLLATE",
                            "LC_MESSAGES", "LC_NUMERIC", "LC_TIME", "TERM", "COLUMNS", "LINES"})


def exportable(names: Iterable[str]) -> bool:
    """True when the shell can ``export`` every one of ``names`` exactly as ``env`` would set it."""
    return all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) and n not in _SHELL_SPECIAL and
               not n.startswith(("BASH", "LC_")) for n in names)


def render_shim(cfg: ShimConfig, n_datums: int, *, title: str = "", env_names: Iterable[str] | None = None) -> str:
    """The text of ``WORK/shim.sh`` for ``n_datums`` datums staged as ``WORK/datums/0..n-1``.

    Every user string goes through :func:`shlex.quote`. Stdin texts are not in the script: stage writes
    them to ``WORK/stdin`` and ``WORK/err_stdin`` (see :func:`pach_airflow.worker.stage.write_shim`).
    ``env_names``: every variable name of every datum's ``env`` file; when the shell can export them all
    (:func:`exportable`), the user's code starts without an extra ``env`` exec. ``None``: always ``env``.
    """
    use_export = env_names is not None and exportable(env_names)
    timeout = "" if cfg.datum_timeout is None else str(max(1, math.ceil(cfg.datum_timeout)))
    accept = "|".join(["0", *(str(c) for c in cfg.accept_return_code)])
    # cmd[0] is looked up in PATH by the shim (see lookpath) and passed as an absolute path: busybox
    # env would otherwise run its own applet for names like sh, ls or cp instead of the image's program.
    prefix = _words(cfg.user_prefix)
    cmd_args = _words(cfg.cmd[1:])
    err_args = _words(cfg.err_cmd[1:]) if cfg.err_cmd else ""
    # The datum's variables: exported by this (forked) shell when every name allows it, else by `env`.
    env_setup = '    [ "$#" = 0 ] || export "$@"\n' if use_export else ""
    # (setsid finds `env` by path: whether it would prefer its own applet to PATH depends on the build.)
    env_cmd = "" if use_export else "$BB env -- \"$@\" "
    header = f"# {title}\n" if title else ""
    # The script body. Shell variables used throughout:
    #   W work dir, BB busybox, P /pfs, d the datum dir, t0 attempt start (centiseconds)
    return f"""# Generated by pach_airflow.worker.shim: the per-datum loop. Run as: WORK/bin/busybox sh WORK/shim.sh
{header}# Calls only busybox applets ($A, $BB) for its own needs, so it runs in images without a shell.
case "$0" in */*) W="${{0%/*}}" ;; *) W=. ;; esac
W=$(cd "$W" && pwd) || exit 70
BB="$W/bin/busybox"
P={_q(cfg.pfs_root)}
N={int(n_datums)}
TRIES={cfg.datum_tries}
TIMEOUT={timeout}
HAS_STDIN={1 if cfg.stdin is not None else 0}
HAS_ERR_STDIN={1 if cfg.err_stdin is not None else 0}
WORKING_DIR={_q(cfg.working_dir)}
CMD0={_q(cfg.cmd[0])}
ERR0={_q(cfg.err_cmd[0]) if cfg.err_cmd else "''"}

if [ ! -x "$BB" ]; then echo "shim: $BB is missing: run 'pach-airflow worker stage' first" >&2; exit 70; fi
if [ ! -d "$P" ] || [ ! -w "$P" ]; then
  echo "shim: $P must be an existing, writable directory (an emptyDir volume, or the local runner's mount)" >&2
  exit 70
fi

# transform.user (local runner): the user that must own /pfs/out.
OWNER=; if [ -f "$W/owner" ]; then read -r OWNER < "$W/owner"; fi

# A minimal root filesystem may lack /proc, even /dev/null: fall back to files of our own where we can.
# (busybox sh itself opens /dev/null for background jobs, which every container runtime provides.)
if [ -c /dev/null ]; then NULL=/dev/null; EMPTY=/dev/null; else NULL="$W/.null"; EMPTY="$W/.empty"; : > "$EMPTY"; fi

# A: how the shim calls an applet. A busybox built with FEATURE_SH_STANDALONE (Debian's busybox-static)
# runs `rm` as its own applet whatever PATH says, in the forked shell, without an exec: then A is empty.
# Any other build: A=$BB (fork + exec of $BB). Probed once, in a subshell, with a PATH that has nothing.
# (Applets that are not run in the shell re-exec /proc/self/exe, hence the check for it.)
# PACH_AIRFLOW_SHIM_EXEC_APPLETS=1 forces the exec'ing way (a busybox whose applets misbehave by name).
if [ "${{PACH_AIRFLOW_SHIM_EXEC_APPLETS:-}}" != 1 ] && [ -e /proc/self/exe ] &&
   ( PATH=/.pach-airflow-no-path; exec basename / ) >"$NULL" 2>&1; then A=; else A=$BB; fi

# Epoch time in centiseconds. busybox sh >= 1.34 has $EPOCHREALTIME ("seconds.micro", no syscall);
# else busybox date (no %N) plus /proc/uptime for the fraction.
if [ -n "${{EPOCHREALTIME:-}}" ]; then
  now() {{ _now=$EPOCHREALTIME; _now="${{_now%.*}}${{_now#*.}}"; _now=${{_now%????}}; }}
else
  E0=$($A date +%s)
  if [ -r /proc/uptime ]; then
    up() {{ read -r _u _rest < /proc/uptime; _u="${{_u%.*}}${{_u#*.}}"; }}
  else
    up() {{ _u=$(( ($($A date +%s) - E0) * 100 + U0 )); }}
  fi
  U0=0; up; U0=$_u
  now() {{ up; _now=$(( E0 * 100 + _u - U0 )); }}
fi

# load_vars: the datum's exec env (_envtext, the env file's text) and /pfs/.env text (_dotenv). The
# `read` builtin costs two syscalls per byte; sourcing stage's `vars` file reads it in one go.
load_vars() {{
  if [ -f "$d/vars" ]; then . "$d/vars"; _vars=1; return 0; fi
  _vars=; _envtext=
  while IFS= read -r _l || [ -n "$_l" ]; do _envtext="$_envtext$_l
"; done < "$d/env"
}}
# fmt CS: sets _fmt to centiseconds CS as seconds ("12.05"); no subshell, this runs several times a datum.
fmt() {{ _c=$(( $1 % 100 )); [ "$_c" -lt 10 ] && _c=0$_c; _fmt=$(( $1 / 100 )).$_c; }}
log() {{ now; fmt "$_now"; printf '%s %s\\n' "$_fmt" "$*" >> "$d/log"; }}

accepted() {{ case "$1" in {accept}) return 0 ;; esac; return 1; }}

# Shell builtins (kill, printf, read, test) are part of busybox sh itself; every other command is $A's.
# Forks and execs are the shim's main cost, so each step below uses as few as it can.
clear_pfs() {{
  LINKED=
  set --
  for _e in "$P"/* "$P"/.[!.]* "$P"/..?*; do
    if [ -e "$_e" ] || [ -L "$_e" ]; then set -- "$@" "$_e"; fi
  done
  [ "$#" = 0 ] || $A rm -rf -- "$@"
}}

# is_empty DIR: true when DIR has no entries at all (hidden ones included).
is_empty() {{
  for _x in "$1"/* "$1"/.[!.]* "$1"/..?*; do if [ -e "$_x" ] || [ -L "$_x" ]; then return 1; fi; done
  return 0
}}

# LINKED: "/name/name..." of the input links the last attempt made in /pfs ("" = rebuild /pfs).
LINKED=
# pfs_is_ours: /pfs holds only those links, a plain .env and an empty out folder, i.e. nothing the user's
# code left there; then the next datum may relink in place instead of clearing /pfs.
pfs_is_ours() {{
  [ -n "$LINKED" ] || return 1
  for _e in "$P"/* "$P"/.[!.]* "$P"/..?*; do
    [ -e "$_e" ] || [ -L "$_e" ] || continue
    _n=${{_e##*/}}
    if [ "$_n" = .env ]; then [ -f "$_e" ] && [ ! -L "$_e" ] || return 1; continue; fi
    if [ "$_n" = out ]; then [ -d "$_e" ] && [ ! -L "$_e" ] && is_empty "$_e" || return 1; continue; fi
    case "$LINKED/" in *"/$_n/"*) [ -L "$_e" ] || return 1 ;; *) return 1 ;; esac
  done
}}

# Makes /pfs look like Pachyderm's for one attempt: inputs linked (driver_unix.go linkData), .env, empty out.
setup_pfs() {{
  set --; _names=
  for _i in "$d"/pfs/*; do [ -e "$_i" ] && {{ set -- "$@" "$_i"; _names="$_names/${{_i##*/}}"; }}; done
  if [ -n "$_names" ] && [ "$_names" = "$LINKED" ] && pfs_is_ours; then
    # The same input names as the last datum: one `ln -sf` points each link at this datum's inputs.
    $A ln -sf -- "$@" "$P/" || return 1
  else
    clear_pfs || return 1
    [ "$#" = 0 ] || $A ln -s -- "$@" "$P/" || return 1
  fi
  LINKED=$_names
  if [ -n "$_vars" ]; then
    printf '%s' "$_dotenv" > "$P/.env" || return 1
  elif [ -f "$d/dotenv" ]; then
    while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\\n' "$_l"; done < "$d/dotenv" > "$P/.env" || return 1
  fi
  # An empty /pfs/out left in place by the last datum (see collect_out) is as fresh as a new one.
  if [ ! -d "$P/out" ] || [ -L "$P/out" ]; then
    $A mkdir "$P/out" || return 1
    if [ -n "$OWNER" ]; then $A chown "$OWNER" "$P/out" || return 1; fi
  fi
}}

# collect_out: /pfs/out's content into $d/out (stage made it empty), leaving /pfs/out in place and empty
# for the next datum: one `mv`, none when there is no output. (/pfs is another mount than the work
# folder, so mv copies and deletes either way; moving the folder itself would gain nothing.)
collect_out() {{
  if [ -L "$d/out" ] || [ ! -d "$d/out" ] || ! is_empty "$d/out"; then
    $A rm -rf -- "$d/out"; $A mkdir -p "$d/out"  # a restarted shim: a datum's earlier, partial try
  fi
  if [ ! -d "$P/out" ] || [ -L "$P/out" ]; then
    # The code replaced /pfs/out (by a file, a link) or removed it: upload judges what it left; the next
    # datum starts from a clean /pfs.
    LINKED=
    if [ -e "$P/out" ] || [ -L "$P/out" ]; then
      $A rm -rf -- "$d/out"; $A mv -- "$P/out" "$d/out" 2>"$NULL" || $A cp -a -- "$P/out" "$d/out"
    fi
    return 0
  fi
  set --
  for _e in "$P"/out/* "$P"/out/.[!.]* "$P"/out/..?*; do
    if [ -e "$_e" ] || [ -L "$_e" ]; then set -- "$@" "$_e"; fi
  done
  [ "$#" = 0 ] && return 0
  $A mv -f -- "$@" "$d/out/" 2>"$NULL" && return 0
  # Too many names for one command line, or a move that failed half way: copy what is left, start over.
  LINKED=
  $A cp -a -- "$P/out/." "$d/out/" && $A rm -rf -- "$P/out"
}}

# lookpath NAME: sets _prog to NAME's absolute path, searched in PATH as Go's exec.LookPath does (a name
# with a slash is used as it is). Returns 1 when there is no such executable.
lookpath() {{
  case "$1" in */*) _prog=$1; return 0 ;; esac
  _prog=
  _oldifs=$IFS; IFS=:
  for _dir in ${{PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}}; do
    [ -n "$_dir" ] || _dir=.
    if [ -f "$_dir/$1" ] && [ -x "$_dir/$1" ]; then _prog="$_dir/$1"; break; fi
  done
  IFS=$_oldifs
  [ -n "$_prog" ]
}}

# run_user KIND SECONDS: runs cmd (KIND=cmd) or err_cmd (KIND=err) in its own session with the datum's
# env, stdin and working dir, killing its process group on timeout and when it exits (driver_unix.go).
# Sets rc (exit status) and timed_out (1 when the watchdog fired).
run_user() {{
  _kind=$1; _secs=$2; timed_out=0
  if [ "$_kind" = cmd ]; then _in=$EMPTY; [ "$HAS_STDIN" = 1 ] && _in="$W/stdin"
  else _in=$EMPTY; [ "$HAS_ERR_STDIN" = 1 ] && _in="$W/err_stdin"; fi
  if [ "$_kind" = cmd ]; then _name=$CMD0; else _name=$ERR0; fi
  if ! lookpath "$_name"; then
    echo "exec: \\"$_name\\": executable file not found in \\$PATH" >> "$d/log"
    rc=127; return 0
  fi
  (
    if [ -n "$WORKING_DIR" ]; then
      cd "$WORKING_DIR" 2>"$NULL" || {{ echo "chdir $WORKING_DIR: no such file or directory" >> "$d/log"; exit 126; }}
    fi
    eval "set -- $_envtext"
{env_setup}    if [ "$_kind" = cmd ]; then
      exec $A setsid {env_cmd}{prefix} "$_prog" {cmd_args} < "$_in" >> "$d/log" 2>&1
    else
      exec $A setsid {env_cmd}{prefix} "$_prog" {err_args} < "$_in" >> "$d/log" 2>&1
    fi
  ) &
  _pid=$!
  _wd=
  if [ -n "$_secs" ]; then
    $A setsid $BB sh -c '"$1" sleep "$2"; : > "$3"; "$1" kill -KILL "-$4" 2>"$5"' _ "$BB" "$_secs" "$d/.timed_out" "$_pid" "$NULL" &
    _wd=$!
  fi
  wait "$_pid"; rc=$?
  if [ -n "$_wd" ]; then kill -KILL "-$_wd" 2>"$NULL"; wait "$_wd" 2>"$NULL"; fi
  kill -KILL "-$_pid" 2>"$NULL"
  if [ -e "$d/.timed_out" ]; then timed_out=1; $A rm -f "$d/.timed_out"; fi
  return 0
}}

run_datum() {{
  d="$W/datums/$1"
  [ -s "$d/state" ] && return 0
  now; start=$_now
  load_vars
  state=FAILED; reason=; recovered=0; try=0
  while [ "$try" -lt "$TRIES" ]; do
    try=$((try + 1))
    if ! setup_pfs; then reason="could not prepare $P for the datum"; log "$reason"; break; fi
    log "beginning to run user code (attempt $try of $TRIES)"
    now; t0=$_now
    run_user cmd "$TIMEOUT"
    now; fmt $((_now - t0)); el=$_fmt
    if [ "$timed_out" = 1 ]; then
      reason="datum_timeout of ${{TIMEOUT}}s exceeded: the process group was killed"
    elif accepted "$rc"; then
      log "finished running user code after ${{el}}s"
      state=SUCCESS; reason=; break
    elif [ "$rc" = 127 ] || [ "$rc" = 126 ]; then
      reason="exit status $rc: the command could not be run (not found or not executable; see the log)"
    else
      reason="exit status $rc"
    fi
    log "errored running user code after ${{el}}s: $reason"
    {"run_err" if cfg.err_cmd else ":"}
  done
  if [ "$state" != SUCCESS ] && [ "$recovered" = 1 ]; then state=RECOVERED; fi
  [ "$state" = SUCCESS ] && [ -d "$P/out" ] && materialize_links
  collect_out
  now
  printf '%s\\n' "$try" > "$d/tries"
  printf '%s\\n' "$recovered" > "$d/recovered"
  printf '%s\\n' "$reason" > "$d/reason"
  fmt "$start"; _t0=$_fmt; fmt "$_now"
  printf '%s %s\\n' "$_t0" "$_fmt" > "$d/timing"
  # Last: a datum with a non-empty state is done (a restarted shim skips it).
  printf '%s\\n' "$state" > "$d/state"
  # The container's / runner's own log shows every datum (Airflow task logs, kubectl logs).
  echo "== datum $1: $state after $try attempt(s)${{reason:+: $reason}}"
  show_log
}}

# show_log: the datum's log on the shim's stdout. `read` costs a syscall per byte, so builtins copy the
# first lines (usually all there is) and `cat` the rest of a long log.
show_log() {{
  {{
    _k=0; _l=
    while [ "$_k" -lt 8 ] && IFS= read -r _l; do printf '%s\n' "$_l"; _k=$((_k + 1)); _l=; done
    if [ "$_k" = 8 ]; then $A cat; elif [ -n "$_l" ]; then printf '%s\n' "$_l"; fi
  }} < "$d/log" 2>"$NULL"
}}

# Symlinks in /pfs/out to files outside /pfs (say /tmp/model.bin) are replaced by copies here, where the
# user's filesystem is visible: in a pod, upload runs in another container. Links into /pfs stay links;
# upload resolves them by reference (Pachyderm's handleSymlinks; the empty_files trick).
# The walk is builtins only (globs and tests): the common /pfs/out has no links and costs no process.
materialize_links() {{ walk_links "$P/out"; }}
walk_links() {{
  local _f
  for _f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -L "$_f" ]; then
      materialize_link "$_f"
    elif [ -d "$_f" ]; then
      walk_links "$_f"
    fi
  done
}}
materialize_link() {{
  _tgt=$($A readlink -f "$1") || return 0
  case "$_tgt" in "$P"|"$P"/*|"$d"/*) return 0 ;; esac
  [ -e "$_tgt" ] || return 0
  $A rm -f "$1" && $A cp -RL "$_tgt" "$1"
}}

# err_cmd after a failed attempt, under what is left of the attempt's datum_timeout.
run_err() {{
  if [ "$timed_out" = 1 ]; then log "not running user error handling code: the datum timed out"; return; fi
  _left=
  if [ -n "$TIMEOUT" ]; then now; _left=$(( TIMEOUT - (_now - t0) / 100 )); [ "$_left" -lt 1 ] && _left=1; fi
  log "beginning to run user error handling code"
  now; _e0=$_now
  run_user err "$_left"
  now; fmt $((_now - _e0)); _el=$_fmt
  if [ "$timed_out" = 0 ] && accepted "$rc"; then
    recovered=1
    log "finished running user error handling code after ${{_el}}s"
  else
    log "errored running user error handling code after ${{_el}}s: exit status $rc"
  fi
}}

n=0
while [ "$n" -lt "$N" ]; do
  run_datum "$n"
  n=$((n + 1))
done
clear_pfs
: > "$W/done"
exit 0
"""
