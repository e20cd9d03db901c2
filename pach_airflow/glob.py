"""Pachyderm globs: the pattern language, matching over a commit, and capture replacement.

Owns the translation of a glob into a Python regular expression exactly the way Pachyderm's glob
library (``pachyderm/ohmyglob``) builds its regexp2 pattern, the cleaning Pachyderm applies first
(``pfsfile.CleanPath``), ``GlobFile`` (the matches of a glob over a commit, directories included and
reported with a trailing ``/``) and ``Replace`` (the ``$n`` templates of ``join_on`` / ``group_by``).

The lexer and parser below follow ohmyglob's token and tree rules one for one, quirks included
(for example ``|`` separates alternatives inside a ``{...}`` nested in a capture, and a ``!`` anywhere
in a character class negates it), because datums must be the ones Pachyderm would make.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pach_airflow.errors import GlobError

__all__ = ["Glob", "clean_glob", "compile_glob", "glob_file", "glob_to_regex", "match_entries", "match_files",
           "replace_template"]

_EOF = ""
_SEP = "/"
# ohmyglob marks the places a negation's scope may end with two non-characters; they are removed
# (or turned into "$") once the whole pattern is compiled.
_CLOSE_NEG = "\uffff"
_BOUNDARY = "\ufffe"
# Go's regexp.QuoteMeta escapes exactly these.
_GO_META = set("\\.+*?()|[]{}^$")
# Characters that start anything but plain text: the literal prefix of a glob ends at the first one
# (Pachyderm's globRegex ``[*?[\]{}!()@+^]``, plus the escape character, which changes what follows).
_SPECIAL = set("*?[]{}!()@+^\\")
# Pachyderm's globRegex itself, without the escape character: ``storage.GlobLiteralPrefix`` cuts there.
_GLOB_CHARS = set("*?[]{}!()@+^")

_POSIX = {
    ":alnum:": "0-9A-Za-z",
    ":alpha:": "A-Za-z",
    ":ascii:": "\x00-\x7f",
    ":blank:": "\t ",
    ":cntrl:": "\x00-\x1f\x7f",
    ":digit:": "0-9",
    ":graph:": "!-~]",  # sic: ohmyglob's table has the stray "]"
    ":lower:": "a-z",
    ":print:": " -~",
    ":punct:": "!-/:-@[-`{-~",
    ":space:": "\t\n\v\f\r ",
    ":upper:": "A-Z",
    ":word:": "0-9A-Za-z_",
    ":xdigit:": "0-9A-Fa-f",
}


def _quote_meta(text: str) -> str:
    return "".join("\\" + c if c in _GO_META else c for c in text)


def _quote_class(text: str) -> str:
    # Like QuoteMeta, but also "&" and "~": Python warns about "&&" / "~~" as future set operations,
    # and an escaped punctuation character means the same character in a class.
    return "".join("\\" + c if c in _GO_META or c in "&~" else c for c in text)


# ---------------------------------------------------------------------------------------------- lexer

_T_EOF, _T_ERROR, _T_TEXT, _T_ANY, _T_SUPER, _T_SINGLE, _T_NOT, _T_SEP = range(8)
_T_RANGE_OPEN, _T_RANGE_CLOSE, _T_TERMS_OPEN, _T_TERMS_CLOSE, _T_CAPTURE_OPEN, _T_CAPTURE_CLOSE = range(8, 14)

_BASIC_BREAKERS = frozenset("?*[{(")
_EXTENDED_BREAKERS = _BASIC_BREAKERS | frozenset("@!^+")
_CAPTURE_BREAKERS = _EXTENDED_BREAKERS | frozenset(")|")
_TERMS_BREAKERS = _EXTENDED_BREAKERS | frozenset("},")


class _Lexer:
    def __init__(self, source: str):
        self.data = source
        self.pos = 0
        self.last_size = 0
        self.tokens: list[tuple[int, str]] = []
        self.terms = 0
        self.capture = 0
        self.err: str | None = None

    def next(self) -> tuple[int, str]:
        while True:
            if self.err is not None:
                return (_T_ERROR, self.err)
            if self.tokens:
                return self.tokens.pop(0)
            before = (self.pos, len(self.tokens))
            self._fetch()
            if (self.pos, len(self.tokens)) == before and self.err is None:
                raise GlobError(f"glob {self.data!r}: cannot parse near position {self.pos}")

    def _peek(self) -> str:
        return self.data[self.pos] if self.pos < len(self.data) else _EOF

    def _read(self) -> str:
        r = self._peek()
        self.last_size = len(r)
        self.pos += self.last_size
        return r

    def _unread(self) -> None:
        self.pos -= self.last_size
        self.last_size = 0

    def _push(self, kind: int, raw: str) -> None:
        self.tokens.append((kind, raw))

    def _fetch(self) -> None:
        r = self._read()
        if r == _EOF:
            self._push(_T_EOF, "")
        elif r == "{":
            self.terms += 1
            self._push(_T_TERMS_OPEN, r)
        elif r == "," and self.terms > 0:
            self._push(_T_SEP, r)
        elif r == "}" and self.terms > 0:
            self._push(_T_TERMS_CLOSE, r)
            self.terms -= 1
        elif r == "|" and self.capture > 0:
            self._push(_T_SEP, r)
        elif r == "[":
            self._push(_T_RANGE_OPEN, r)
            self._fetch_range()
        elif r == "(":
            self._push(_T_CAPTURE_OPEN, "@(")
            self.capture += 1
        elif r in "@!^+":
            if self._peek() == "(":
                self._read()
                self._push(_T_CAPTURE_OPEN, r + "(")
                self.capture += 1
            else:
                self._unread()
                self._fetch_text(_BASIC_BREAKERS)
        elif r == ")" and self.capture > 0:
            self._push(_T_CAPTURE_CLOSE, r)
            self.capture -= 1
        elif r == "?":
            if self._read() == "(":
                self._push(_T_CAPTURE_OPEN, "?(")
                self.capture += 1
            else:
                self._unread()
                self._push(_T_SINGLE, r)
        elif r == "*":
            nxt = self._read()
            if nxt == "*":
                if self._peek() == "(":
                    self._unread()
                    self._push(_T_ANY, r)
                else:
                    self._push(_T_SUPER, "**")
            elif nxt == "(":
                self._push(_T_CAPTURE_OPEN, "*(")
                self.capture += 1
            else:
                self._unread()
                self._push(_T_ANY, r)
        else:
            self._unread()
            if self.terms > 0:
                breakers = _TERMS_BREAKERS
            elif self.capture > 0:
                breakers = _CAPTURE_BREAKERS
            else:
                breakers = _EXTENDED_BREAKERS
            self._fetch_text(breakers)

    def _fetch_range(self) -> None:
        seen_not = in_posix = escaped = False
        data: list[str] = []
        while True:
            r = self._read()
            if r == _EOF:
                self.err = "unexpected end of input"
                return
            if not escaped:
                if r == "\\":
                    escaped = True
                    continue
                if r == "[":
                    in_posix = True
                if r == "]":
                    if in_posix:
                        in_posix = False
                    else:
                        break
                if not seen_not and r in "!^":
                    self._push(_T_NOT, r)
                    seen_not = True
                    continue
            escaped = False
            data.append(r)
        if data:
            self._push(_T_TEXT, "".join(data))
        self._push(_T_RANGE_CLOSE, "]")

    def _fetch_text(self, breakers: frozenset[str]) -> None:
        data: list[str] = []
        escaped = False
        while True:
            r = self._read()
            if r == _EOF:
                break
            if not escaped:
                if r == "\\":
                    escaped = True
                    continue
                if r in breakers:
                    self._unread()
                    break
            escaped = False
            data.append(r)
        if data:
            self._push(_T_TEXT, "".join(data))


# --------------------------------------------------------------------------------------------- parser

@dataclass(eq=False)
class _Node:
    kind: str  # pattern | anyof | capture | text | any | super | single | list
    value: Any = None
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def insert(self, child: _Node) -> _Node:
        child.parent = self
        self.children.append(child)
        return child


def _parse(pattern: str) -> _Node:
    lex = _Lexer(pattern)
    root = _Node("pattern")
    tree = root
    while True:
        kind, raw = lex.next()
        if kind == _T_EOF:
            return root
        if kind == _T_ERROR:
            raise GlobError(f"glob {pattern!r}: {raw}")
        if kind == _T_TEXT:
            tree.insert(_Node("text", raw))
        elif kind == _T_ANY:
            tree.insert(_Node("any"))
        elif kind == _T_SUPER:
            tree.insert(_Node("super"))
        elif kind == _T_SINGLE:
            tree.insert(_Node("single"))
        elif kind == _T_RANGE_OPEN:
            tree.insert(_parse_range(pattern, lex))
        elif kind in (_T_TERMS_OPEN, _T_CAPTURE_OPEN):
            group = tree.insert(_Node("anyof") if kind == _T_TERMS_OPEN else _Node("capture", raw[:1]))
            tree = group.insert(_Node("pattern"))
        elif kind == _T_SEP:
            if tree.parent is None:
                raise GlobError(f"glob {pattern!r}: separator outside of {{...}} or (...)")
            tree = tree.parent.insert(_Node("pattern"))
        elif kind in (_T_TERMS_CLOSE, _T_CAPTURE_CLOSE):
            if tree.parent is None or tree.parent.parent is None:
                raise GlobError(f"glob {pattern!r}: unbalanced {raw!r}")
            tree = tree.parent.parent
        else:
            raise GlobError(f"glob {pattern!r}: unexpected token {raw!r}")


def _parse_range(pattern: str, lex: _Lexer) -> _Node:
    negate, chars = False, ""
    while True:
        kind, raw = lex.next()
        if kind == _T_EOF:
            raise GlobError(f"glob {pattern!r}: unexpected end inside [...]")
        if kind == _T_ERROR:
            raise GlobError(f"glob {pattern!r}: {raw}")
        if kind == _T_NOT:
            negate = True
        elif kind == _T_TEXT:
            chars = raw
            for name, spelled in _POSIX.items():
                chars = chars.replace(name, spelled)
        elif kind == _T_RANGE_CLOSE:
            return _Node("list", (negate, chars))


# ------------------------------------------------------------------------------------------- compiler

def _compile_children(node: _Node, pattern: str, join: str, dot: str) -> str:
    return join.join(_compile_node(c, pattern, dot) for c in node.children)


def _compile_node(node: _Node, pattern: str, dot: str) -> str:
    kind = node.kind
    if kind == "anyof":
        if not node.children:
            return ""
        return "(?:" + _compile_children(node, pattern, "|", dot) + ")"
    if kind == "pattern":
        return _compile_children(node, pattern, "", dot)
    if kind == "capture":
        if not node.children:
            return ""
        quant = node.value
        if quant == "!":
            inner = _compile_children(node, pattern, _CLOSE_NEG + "|", dot)
            return "((?:(?!(?:" + inner + _CLOSE_NEG + "))" + dot + "*))"
        inner = _compile_children(node, pattern, "|", dot)
        if quant in ("*", "?", "+"):
            return "((?:" + inner + ")" + quant + ")"
        if quant == "@":
            return "(" + inner + ")"
        raise GlobError(f"glob {pattern!r}: {quant}(...) is not a supported extended glob; use @( *( +( ?( or !(")
    if kind == "any":
        return dot + "*" + _BOUNDARY
    if kind == "super":
        return ".*" + _BOUNDARY
    if kind == "single":
        return dot
    if kind == "list":
        negate, chars = node.value
        return "[" + ("^" if negate else "") + _quote_class(chars) + "]"
    if kind == "text":
        return _quote_meta(node.value) + _BOUNDARY
    raise GlobError(f"glob {pattern!r}: cannot compile node {kind}")


def glob_to_regex(pattern: str, separators: str = "/") -> str:
    """The regular expression (Python syntax) ohmyglob builds for ``pattern`` (not cleaned here);
    ``*`` and ``?`` do not cross ``separators`` (Pachyderm passes ``/``)."""
    dot = "[^" + _quote_class(separators) + "]" if separators else "."
    regex = _compile_node(_parse(pattern), pattern, dot)
    # A negation's scope ends at the next boundary (text, * or **); with none after it, at the end.
    index = regex.find(_CLOSE_NEG + ")")
    if index > 0:
        if _BOUNDARY in regex[index:]:
            regex = regex.replace(_CLOSE_NEG, "")
        else:
            regex = regex.replace(_CLOSE_NEG, "$")
    regex = regex.replace(_BOUNDARY, "")
    return r"\A" + regex + r"\Z"


# ------------------------------------------------------------------------------------------- cleaning

def _go_path_clean(p: str) -> str:
    """Go's ``path.Clean``: no empty or ``.`` parts, ``..`` resolved lexically (dropped at the root of
    a rooted path, kept at the start of a relative one), no trailing ``/``; ``""`` → ``.``."""
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")  # a relative path keeps the '..' it cannot resolve
            continue
        out.append(part)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def clean_glob(pattern: str) -> str:
    """``pfsfile.CleanPath`` as Pachyderm applies it to globs: Go's ``path.Clean`` first, then one
    leading ``/`` (``*`` → ``/*``, ``/(*)/`` → ``/(*)``, ``""`` → ``/``). Cleaning comes before the
    ``/``, so a relative ``../h/*`` stays ``/../h/*`` (it matches nothing) while ``/../h/*`` is
    ``/h/*``."""
    if not isinstance(pattern, str):
        raise GlobError(f"glob {pattern!r} is not a string")
    cleaned = _go_path_clean(pattern)
    if cleaned == ".":
        return "/"
    return "/" + cleaned.strip("/")


def _literal_prefix(cleaned: str) -> str:
    """The deepest directory every match lies in: the part of the glob before its first special
    character, cut back to a whole directory (``/a/b*/c`` → ``/a``, ``/*`` → ``/``)."""
    end = next((i for i, c in enumerate(cleaned) if c in _SPECIAL), len(cleaned))
    head = cleaned[:end]
    if end == len(cleaned):
        # no special character: the glob names one path, which lies in its parent directory
        head = head.rstrip("/")
    cut = head.rfind("/")
    return head[:cut] or "/"


# ---------------------------------------------------------------------------------------------- Glob

@lru_cache(maxsize=1024)
def _parse_template(template: str) -> tuple[str | int, ...]:
    """``template`` as literal strings and capture numbers (-1: a number Go refuses, expands to "")."""
    parts: list[str | int] = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            parts.append(template[i:])
            break
        parts.append(template[i:j])
        if j + 1 < n and template[j + 1] == "$":
            parts.append("$")
            i = j + 2
            continue
        k = j + 1
        brace = k < n and template[k] == "{"
        if brace:
            k += 1
        start = k
        while k < n and template[k].isdigit():
            k += 1
        name = template[start:k]
        if not name or (brace and (k >= n or template[k] != "}")):
            parts.append("$")  # malformed: the "$" is plain text
            i = j + 1
            continue
        if brace:
            k += 1
        num = int(name) if len(name) <= 9 else -1
        if name[0] == "0" and len(name) > 1:
            num = -1  # Go refuses leading zeros
        parts.append(num)
        i = k
    return tuple(p for p in parts if p != "")


def replace_template(captures: list[str] | None, template: str) -> str:
    """ohmyglob ``Replace`` (Go's ``regexp.Expand``): ``$n`` / ``${n}`` → capture n (``$0`` the whole
    match, a missing group ""), ``$$`` → ``$``; a ``$`` not followed by digits stays as it is."""
    if "$" not in template:
        return template
    caps = captures or []
    n = len(caps)
    return "".join(p if isinstance(p, str) else (caps[p] if 0 <= p < n else "") for p in _parse_template(template))


@dataclass(frozen=True)
class Glob:
    """A compiled, cleaned glob. ``match`` and ``replace`` take paths as Pachyderm reports them
    (directories may end with ``/``)."""

    pattern: str
    regex: re.Pattern[str]
    literal_prefix: str

    @property
    def above_root(self) -> bool:
        """A relative glob that climbs above the root (``../h/*`` cleans to ``/../h/*``): no stored
        path can match it, and its literal prefix is not a path a store accepts."""
        return self.pattern == "/.." or self.pattern.startswith("/../")

    def match(self, path: str) -> bool:
        if self.pattern == "/":
            return path == "/"
        return self.regex.match(path.rstrip("/")) is not None

    def captures(self, path: str) -> list[str] | None:
        """Group 0 (the whole match) and every capture group, or None when ``path`` does not match."""
        m = self.regex.match(path.rstrip("/"))
        if m is None:
            return None
        return [m.group(0)] + [g or "" for g in m.groups()]

    def replace(self, path: str, template: str) -> str:
        """The ``join_on`` / ``group_by`` key of ``path``: ``template`` with ``$n`` expanded."""
        if not template or "$" not in template:
            return template
        m = self.regex.match(path.rstrip("/"))
        if m is None:
            return "".join(p for p in _parse_template(template) if isinstance(p, str))
        n = self.regex.groups
        parts = _parse_template(template)
        if len(parts) == 1 and not isinstance(parts[0], str):  # "$1", the usual key
            p = parts[0]
            return (m.group(p) or "") if 0 <= p <= n else ""
        return "".join([p if isinstance(p, str) else ((m.group(p) or "") if 0 <= p <= n else "") for p in parts])


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> Glob:
    """Clean and compile ``pattern``; raises :class:`GlobError` (naming the pattern) if it is bad."""
    cleaned = clean_glob(pattern)
    source = glob_to_regex(cleaned)
    raw = _raw_prefix(cleaned)
    if "\\" in raw:
        # GlobFile reads only the paths that start with the raw prefix (server_file.go:506) while the
        # regex consumes the escape: require both, as Pachyderm does. Without a backslash the regex
        # already starts with exactly that text.
        source = r"\A(?=" + re.escape(raw) + ")" + source[2:]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regex = re.compile(source)
    except re.error as exc:
        raise GlobError(f"glob {pattern!r} does not compile: {exc}; escape special characters with '\\'") from exc
    return Glob(cleaned, regex, _literal_prefix(cleaned))


def _raw_prefix(cleaned: str) -> str:
    """Pachyderm's ``storage.GlobLiteralPrefix``: the cleaned glob up to its first ``[*?[]{}!()@+^]``,
    taken as raw text (a ``\\`` escape stays in it)."""
    return cleaned[:next((i for i, c in enumerate(cleaned) if c in _GLOB_CHARS), len(cleaned))]


# ------------------------------------------------------------------------------------ matching a tree

def _file_info_class() -> Callable[..., Any]:
    from pach_airflow.pfs.info import FileInfo

    return FileInfo


class _OpenDir:
    """A directory being walked. A matching one (``lines`` set) gathers its tree-hash lines, hashed in
    batches, and its size; ``slot`` is its place among the pending matches."""

    __slots__ = ("cut", "hasher", "lines", "path", "size", "slot")

    def __init__(self, path: str, matched: bool, slot: int):
        self.path = path
        self.cut = len(path)
        self.hasher = hashlib.sha256() if matched else None
        self.lines: list[str] | None = [] if matched else None
        self.size = 0
        self.slot = slot

    def flush(self) -> None:
        self.hasher.update("".join(self.lines).encode())
        self.lines.clear()


_FLUSH_LINES = 4096


def match_files(files: Iterable[Any], glob: Glob | str, *, base: str | None = None,
                make_info: Callable[..., Any] | None = None) -> Iterator[Any]:
    """Pachyderm's GlobFile over ``files`` (FileInfo-like objects of type file, sorted by path, all
    under ``base``, default the glob's literal prefix): every file and every directory implied by the
    files strictly below ``base`` that matches, in lexicographic order, each once. See
    :func:`match_entries`."""
    return match_entries(((f.path, f.hash, f.size) for f in files), glob, base=base, make_info=make_info)


def match_entries(entries: Iterable[tuple[str, str, int]], glob: Glob | str, *, base: str | None = None,
                  make_info: Callable[..., Any] | None = None) -> Iterator[Any]:
    """GlobFile over manifest entries ``(path, hash, size)`` sorted by path. Yields FileInfo (or
    ``make_info(path, type, size, hash)``) for every match. A directory is reported with a trailing
    ``/``, its subtree's total size and the store's tree hash (sha256 over
    ``<path relative to the dir>\0<file hash>\n`` of each file below it, ``pfs.manifest.fold_dir``).

    Streams: each directory is tested once, when its first file comes by; memory is bounded by the
    matches inside the outermost open matching directory (they wait for its hash).
    """
    g = compile_glob(glob) if isinstance(glob, str) else glob
    make = make_info or _file_info_class()
    if g.pattern == "/":
        yield from _match_root(entries, make)
        return
    base = g.literal_prefix if base is None else base
    base_dir = base.rstrip("/") + "/"  # "/" or "/a/"
    regex_match = g.regex.match
    stack: list[_OpenDir] = []  # open directories below base, outermost first
    hashing: list[_OpenDir] = []  # the matching ones among them
    pending: list[Any] = []  # matches waiting for the outermost open matching dir to close
    ready: list[Any] = []

    def close_to(depth: int) -> None:
        while len(stack) > depth:
            d = stack.pop()
            if d.hasher is not None:
                hashing.pop()
                d.flush()
                pending[d.slot] = make(d.path, "dir", d.size, d.hasher.hexdigest())
        if not hashing and pending:
            ready.extend(pending)
            pending.clear()

    current_dir = None  # the directory part of the previous file ("/a/b/")
    for path, fhash, fsize in entries:
        cut = path.rfind("/") + 1
        if cut != len(current_dir or "") or not path.startswith(current_dir):
            fdir = path[:cut]
            if not fdir.startswith(base_dir):
                continue  # e.g. a file named like the base directory itself: it cannot match
            # the open dirs that still contain this file stay open; the rest close
            keep = 0
            for d in stack:
                if fdir.startswith(d.path):
                    keep += 1
                else:
                    break
            close_to(keep)
            if ready:
                yield from ready
                ready.clear()
            # open the new directories between the deepest kept one and the file
            start = stack[-1].cut if stack else len(base_dir)
            while start < len(fdir):
                nxt = fdir.index("/", start) + 1
                dpath = fdir[:nxt]
                matched = regex_match(dpath[:-1]) is not None
                d = _OpenDir(dpath, matched, len(pending) if matched else -1)
                if matched:
                    pending.append(None)
                    hashing.append(d)
                stack.append(d)
                start = nxt
            current_dir = fdir
        for d in hashing:
            d.lines.append(f"{path[d.cut:]}\0{fhash}\n")
            d.size += fsize
            if len(d.lines) >= _FLUSH_LINES:
                d.flush()
        if regex_match(path) is not None:
            info = make(path, "file", fsize, fhash)
            if hashing:
                pending.append(info)
            else:
                yield info
    close_to(0)
    yield from ready


def _match_root(entries: Iterable[tuple[str, str, int]], make: Callable[..., Any]) -> Iterator[Any]:
    """Glob ``/``: the root directory, when the commit has any file (an empty commit has no root)."""
    hasher = hashlib.sha256()
    size = count = 0
    lines: list[str] = []
    for path, fhash, fsize in entries:
        lines.append(f"{path[1:]}\0{fhash}\n")
        size += fsize
        count += 1
        if len(lines) >= _FLUSH_LINES:
            hasher.update("".join(lines).encode())
            lines.clear()
    hasher.update("".join(lines).encode())
    if count:
        yield make("/", "dir", size, hasher.hexdigest())


def glob_file(store: Any, repo: str, ref: str, pattern: str) -> Iterator[Any]:
    """What ``pachctl glob file repo@ref:pattern`` prints: the matches of ``pattern`` in the commit
    ``ref`` resolves to, reading only the part of the manifest under the glob's literal prefix."""
    g = compile_glob(pattern)
    if g.above_root:
        return iter(())
    base = "/" if g.pattern == "/" else g.literal_prefix
    iter_entries = getattr(store, "iter_entries", None)
    if iter_entries is not None:  # plain tuples: no FileInfo for the files that do not match
        return match_entries(iter_entries(repo, ref, base), g, base=base)
    return match_files(store.walk(repo, ref, base), g, base=base)
