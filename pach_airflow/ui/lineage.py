"""The lineage graph of pipelines and repos, and its server-side SVG drawing.

A pipeline reads the repos named by the PFS (and cron) inputs of its spec and writes the repo that carries
its own name, so the graph is ``input repo → pipeline → output repo``. :func:`build_lineage` turns
normalised specs (dicts, snake_case, as :func:`pach_airflow.spec.dump_spec` or the store's pipeline records
hold them) into nodes and edges; :func:`layout` places them in columns by longest path from the sources;
:func:`render_svg` draws that as inline SVG with links, so the page needs no JavaScript and no graph library.
Everything here is pure: no store, no Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise
from typing import Any

REPO = "repo"
PIPELINE = "pipeline"


@dataclass(frozen=True, slots=True)
class Node:
    id: str  # "repo:<name>" or "pipeline:<name>"
    kind: str  # REPO | PIPELINE
    name: str
    href: str = ""
    state: str = ""  # a pipeline's last job state (JOB_SUCCESS, JOB_FAILURE, ...), drawn as its colour


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str = ""  # "branch glob" of a PFS input, "cron <spec>" of a cron input


@dataclass
class Lineage:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [{"id": n.id, "kind": n.kind, "name": n.name, **({"state": n.state} if n.state else {})}
                      for n in self.nodes.values()],
            "edges": [{"source": e.source, "target": e.target, "label": e.label} for e in self.edges],
        }


def node_id(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def iter_input_repos(inp: Mapping[str, Any] | None, pipeline: str) -> Iterator[tuple[str, str]]:
    """Yield ``(repo, label)`` for every leaf of an input tree (pfs, cron; through cross/union/join/group).

    A cron input's repo defaults to ``<pipeline>_<name>`` as in Pachyderm.
    """
    if not inp:
        return
    pfs = inp.get("pfs")
    if pfs:
        repo = pfs.get("repo") or pfs.get("name") or ""
        label = " ".join(x for x in (pfs.get("branch") or "master", pfs.get("glob") or "") if x)
        if repo:
            yield repo, label
    cron = inp.get("cron")
    if cron:
        repo = cron.get("repo") or f"{pipeline}_{cron.get('name', 'tick')}"
        yield repo, f"cron {cron.get('spec', '')}".strip()
    for combinator in ("cross", "union", "join", "group"):
        for child in inp.get(combinator) or ():
            yield from iter_input_repos(child, pipeline)


def build_lineage(specs: Iterable[Mapping[str, Any]], repos: Iterable[str] = (),
                  href: Any = None, states: Mapping[str, str] | None = None) -> Lineage:
    """Nodes and edges for ``specs`` (normalised spec dicts) plus any extra ``repos`` (plain data repos).

    ``href(kind, name) -> str`` gives each node's link; omitted, nodes have none. ``states`` maps a
    pipeline to its last job's state.
    """
    g = Lineage()
    states = states or {}

    def add(kind: str, name: str) -> str:
        nid = node_id(kind, name)
        if nid not in g.nodes:
            state = states.get(name, "") if kind == PIPELINE else ""
            g.nodes[nid] = Node(nid, kind, name, href(kind, name) if href else "", state)
        return nid

    for repo in sorted(repos):
        add(REPO, repo)
    seen: set[tuple[str, str]] = set()
    for spec in sorted(specs, key=_pipeline_name):
        name = _pipeline_name(spec)
        if not name:
            continue
        pid = add(PIPELINE, name)
        for repo, label in iter_input_repos(spec.get("input"), name):
            rid = add(REPO, repo)
            if (rid, pid) not in seen:
                seen.add((rid, pid))
                g.edges.append(Edge(rid, pid, label))
        out = add(REPO, name)
        if (pid, out) not in seen:
            seen.add((pid, out))
            g.edges.append(Edge(pid, out, spec.get("output_branch") or "master"))
    return g


def _pipeline_name(spec: Mapping[str, Any]) -> str:
    return str((spec.get("pipeline") or {}).get("name") or "")


# -- layout ------------------------------------------------------------------------------------------

CHAR_W = 7.4  # average glyph width of the 13px UI font, enough to size boxes without measuring text
NODE_H = 34
LANE_H = 12  # the height a long edge takes in a column it passes through
ROW_GAP = 18
COL_GAP = 70
PAD = 16
ARC_DROP = 26  # how far below its nodes the arc of a cycle's back edge dips
SWEEPS = 4  # barycentre passes (down, up, ...) that order each column


@dataclass(frozen=True, slots=True)
class Placed:
    node: Node
    x: float
    y: float
    w: float
    h: float
    layer: int = 0


@dataclass
class Layout:
    """Where everything goes: ``placed`` real nodes; ``routes[i]`` the lanes ``(x_in, x_out, y)`` that
    edge ``g.edges[i]`` takes through the columns it skips (empty for an edge between neighbours)."""

    placed: dict[str, Placed]
    width: float
    height: float
    routes: dict[int, list[tuple[float, float, float]]]


def _layers(g: Lineage) -> dict[str, int]:
    """Longest path from a source; a cycle (Pachyderm refuses them) is cut where it is found."""
    preds: dict[str, list[str]] = {n: [] for n in g.nodes}
    for e in g.edges:
        preds[e.target].append(e.source)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(n: str) -> int:
        if n in layer:
            return layer[n]
        if n in visiting:
            return 0
        visiting.add(n)
        d = max((depth(p) + 1 for p in preds[n]), default=0)
        visiting.discard(n)
        layer[n] = d
        return d

    for n in g.nodes:
        depth(n)
    return layer


def layout(g: Lineage) -> Layout:
    """Columns by :func:`_layers`; an edge that skips columns gets a lane (a dummy node) in each column it
    crosses, so it runs between nodes rather than behind them; each column is ordered by a few
    barycentre sweeps (mean row of the neighbours in the previous column, then the next) so that edges
    cross little, as in Sugiyama-style layered drawing."""
    layer = _layers(g)
    order_key = {n: (g.nodes[n].name, g.nodes[n].kind) for n in g.nodes}
    columns: dict[int, list[str]] = {}
    for n in sorted(g.nodes, key=order_key.__getitem__):
        columns.setdefault(layer[n], []).append(n)

    # Chains through dummies: ("~", edge index, column) stands for edge i's lane in that column.
    up: dict[Any, list[Any]] = {n: [] for n in g.nodes}
    down: dict[Any, list[Any]] = {n: [] for n in g.nodes}
    lanes: dict[int, list[tuple[str, int, int]]] = {}
    for i, e in enumerate(g.edges):
        lo, hi = layer[e.source], layer[e.target]
        if hi <= lo:
            continue  # a back edge of a cut cycle: drawn as an arc, takes no lane
        chain: list[Any] = [e.source]
        for c in range(lo + 1, hi):
            dummy = ("~", i, c)
            up[dummy], down[dummy] = [], []
            columns[c].append(dummy)
            chain.append(dummy)
            lanes.setdefault(i, []).append(dummy)
        chain.append(e.target)
        for a, b in pairwise(chain):
            down[a].append(b)
            up[b].append(a)

    row: dict[Any, float] = {}
    for c in sorted(columns):
        for k, n in enumerate(columns[c]):
            row[n] = k
    ordered = sorted(columns)
    for sweep in range(SWEEPS):
        seq, near = (ordered[1:], up) if sweep % 2 == 0 else (ordered[-2::-1], down)
        for c in seq:
            def key(n: Any, near: dict = near) -> tuple[float, float]:
                ns = [row[m] for m in near[n]]
                return (sum(ns) / len(ns) if ns else row[n], row[n])
            columns[c].sort(key=key)
            for k, n in enumerate(columns[c]):
                row[n] = k

    def height_of(n: Any) -> float:
        return LANE_H if isinstance(n, tuple) else NODE_H

    col_h = {c: sum(height_of(n) for n in col) + ROW_GAP * (len(col) - 1) for c, col in columns.items()}
    height = PAD * 2 + max(col_h.values(), default=0)
    placed: dict[str, Placed] = {}
    lane_at: dict[Any, tuple[float, float, float]] = {}
    x = PAD
    for c in ordered:
        col = columns[c]
        w = max((_node_width(g.nodes[n]) for n in col if not isinstance(n, tuple)), default=40.0)
        y = (height - col_h[c]) / 2
        for n in col:
            if isinstance(n, tuple):
                lane_at[n] = (x, x + w, y + LANE_H / 2)
            else:
                placed[n] = Placed(g.nodes[n], x, y, w, NODE_H, c)
            y += height_of(n) + ROW_GAP
        x += w + COL_GAP
    width = x - COL_GAP + PAD if columns else PAD * 2
    if any(layer[e.target] <= layer[e.source] for e in g.edges):
        height += ARC_DROP + 8
    routes = {i: [lane_at[d] for d in ds] for i, ds in lanes.items()}
    return Layout(placed, width, height, routes)


def _node_width(n: Node) -> float:
    icon = 18
    return max(90.0, len(n.name) * CHAR_W + icon + 24)


def _edge_path(a: Placed, b: Placed, lanes: list[tuple[float, float, float]]) -> str:
    if b.layer <= a.layer:  # a cut cycle's back edge: an arc below both nodes
        x1, y1 = a.x + a.w / 2, a.y + a.h
        x2, y2 = b.x + b.w / 2, b.y + b.h + 2
        low = max(y1, y2) + ARC_DROP
        return f"M {x1:.1f} {y1:.1f} C {x1:.1f} {low:.1f}, {x2:.1f} {low:.1f}, {x2:.1f} {y2:.1f}"
    x, y = a.x + a.w, a.y + a.h / 2
    d = [f"M {x:.1f} {y:.1f}"]
    for x_in, x_out, ly in lanes:
        mid = (x + x_in) / 2
        d.append(f"C {mid:.1f} {y:.1f}, {mid:.1f} {ly:.1f}, {x_in:.1f} {ly:.1f} L {x_out:.1f} {ly:.1f}")
        x, y = x_out, ly
    x2, y2 = b.x - 2, b.y + b.h / 2
    mid = (x + x2) / 2
    d.append(f"C {mid:.1f} {y:.1f}, {mid:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}")
    return " ".join(d)


def render_svg(g: Lineage, *, highlight: str | None = None) -> str:
    """The graph as one ``<svg>`` element; ``highlight`` is a node id drawn emphasised."""
    lay = layout(g)
    placed, width, height = lay.placed, lay.width, lay.height
    if not placed:
        return ('<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="320" height="40" role="img">'
                '<text x="8" y="24" class="empty">No repos or pipelines yet.</text></svg>')
    parts = [
        (f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
         f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="lineage of pipelines and repos">'),
        ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
         'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>'),
    ]
    for i, e in enumerate(g.edges):
        d = _edge_path(placed[e.source], placed[e.target], lay.routes.get(i, []))
        parts.append(f'<path class="edge" d="{d}" marker-end="url(#arrow)"><title>{escape(e.label)}</title></path>')
    for nid, p in placed.items():
        n = p.node
        cls = f"node {n.kind}" + (" highlight" if nid == highlight else "")
        if n.state:
            cls += " st-" + n.state.lower().removeprefix("job_")
        rx = 17 if n.kind == PIPELINE else 5
        body = (
            f'<rect x="{p.x:.1f}" y="{p.y:.1f}" width="{p.w:.1f}" height="{p.h:.1f}" rx="{rx}"/>'
            f'<text x="{p.x + 12:.1f}" y="{p.y + p.h / 2 + 4.5:.1f}">'
            f'<tspan class="kind">{"⚙" if n.kind == PIPELINE else "▤"}</tspan> {escape(n.name)}</text>'
            f"<title>{escape(n.kind)} {escape(n.name)}"
            f"{' · last job ' + escape(n.state.removeprefix('JOB_')) if n.state else ''}</title>"
        )
        if n.href:
            body = f'<a href="{escape(n.href)}">{body}</a>'
        parts.append(f'<g class="{cls}" data-node="{escape(nid)}">{body}</g>')
    parts.append("</svg>")
    return "".join(parts)


def neighbourhood(g: Lineage, center: str, hops: int = 2) -> Lineage:
    """The part of ``g`` within ``hops`` edges of ``center`` (both directions), for a pipeline's page."""
    keep = {center}
    frontier = {center}
    for _ in range(hops):
        nxt: set[str] = set()
        for e in g.edges:
            if e.source in frontier and e.target not in keep:
                nxt.add(e.target)
            if e.target in frontier and e.source not in keep:
                nxt.add(e.source)
        keep |= nxt
        frontier = nxt
    sub = Lineage({k: v for k, v in g.nodes.items() if k in keep})
    sub.edges = [e for e in g.edges if e.source in keep and e.target in keep]
    return sub
