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
from typing import Any

REPO = "repo"
PIPELINE = "pipeline"


@dataclass(frozen=True, slots=True)
class Node:
    id: str  # "repo:<name>" or "pipeline:<name>"
    kind: str  # REPO | PIPELINE
    name: str
    href: str = ""


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
            "nodes": [{"id": n.id, "kind": n.kind, "name": n.name} for n in self.nodes.values()],
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
                  href: Any = None) -> Lineage:
    """Nodes and edges for ``specs`` (normalised spec dicts) plus any extra ``repos`` (plain data repos).

    ``href(kind, name) -> str`` gives each node's link; omitted, nodes have none.
    """
    g = Lineage()

    def add(kind: str, name: str) -> str:
        nid = node_id(kind, name)
        if nid not in g.nodes:
            g.nodes[nid] = Node(nid, kind, name, href(kind, name) if href else "")
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
ROW_GAP = 22
COL_GAP = 70
PAD = 16


@dataclass(frozen=True, slots=True)
class Placed:
    node: Node
    x: float
    y: float
    w: float
    h: float
    layer: int = 0


ARC_DROP = 26  # how far below the lower of its two nodes an edge that skips a column dips


def layout(g: Lineage) -> tuple[dict[str, Placed], float, float]:
    """Place nodes in columns (longest path from a source; a cycle, which Pachyderm refuses, is cut) and
    order each column by the mean row of its predecessors so that edges cross little.

    Returns the placed nodes, total width and height.
    """
    preds: dict[str, list[str]] = {n: [] for n in g.nodes}
    succs: dict[str, list[str]] = {n: [] for n in g.nodes}
    for e in g.edges:
        preds[e.target].append(e.source)
        succs[e.source].append(e.target)

    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(n: str) -> int:
        if n in layer:
            return layer[n]
        if n in visiting:  # a cycle: treat the back edge as absent
            return 0
        visiting.add(n)
        d = max((depth(p) + 1 for p in preds[n]), default=0)
        visiting.discard(n)
        layer[n] = d
        return d

    for n in g.nodes:
        depth(n)
    columns: dict[int, list[str]] = {}
    for n in sorted(g.nodes, key=lambda n: (g.nodes[n].name, g.nodes[n].kind)):
        columns.setdefault(layer[n], []).append(n)

    row: dict[str, float] = {}
    for c in sorted(columns):
        def key(n: str) -> tuple[float, str]:
            ps = [row[p] for p in preds[n] if p in row]
            return (sum(ps) / len(ps) if ps else float("inf"), g.nodes[n].name)
        columns[c].sort(key=key)
        for i, n in enumerate(columns[c]):
            row[n] = i

    placed: dict[str, Placed] = {}
    x = PAD
    max_rows = max((len(v) for v in columns.values()), default=0)
    height = PAD * 2 + max_rows * NODE_H + max(max_rows - 1, 0) * ROW_GAP
    for c in sorted(columns):
        col = columns[c]
        w = max(_node_width(g.nodes[n]) for n in col)
        col_h = len(col) * NODE_H + (len(col) - 1) * ROW_GAP
        y0 = (height - col_h) / 2
        for i, n in enumerate(col):
            placed[n] = Placed(g.nodes[n], x, y0 + i * (NODE_H + ROW_GAP), w, NODE_H, c)
        x += w + COL_GAP
    width = x - COL_GAP + PAD if columns else PAD * 2
    if any(layer[e.target] - layer[e.source] > 1 for e in g.edges):
        height += ARC_DROP + 8  # room for the arcs of edges that skip columns
    return placed, width, height


def _node_width(n: Node) -> float:
    icon = 18
    return max(90.0, len(n.name) * CHAR_W + icon + 24)


def render_svg(g: Lineage, *, highlight: str | None = None) -> str:
    """The graph as one ``<svg>`` element; ``highlight`` is a node id drawn emphasised."""
    placed, width, height = layout(g)
    if not placed:
        return ('<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="320" height="40" role="img">'
                '<text x="8" y="24" class="empty">No repos or pipelines yet.</text></svg>')
    parts = [
        (f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
         f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="lineage of pipelines and repos">'),
        ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
         'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>'),
    ]
    for e in g.edges:
        a, b = placed[e.source], placed[e.target]
        if b.layer - a.layer > 1 or b.layer <= a.layer:
            # Skips a column (or closes a cut cycle): an arc below the nodes, so it never hides behind
            # the edges of the columns it passes.
            x1, y1 = a.x + a.w / 2, a.y + a.h
            x2, y2 = b.x + b.w / 2, b.y + b.h + 2
            low = max(y1, y2) + ARC_DROP
            d = f"M {x1:.1f} {y1:.1f} C {x1:.1f} {low:.1f}, {x2:.1f} {low:.1f}, {x2:.1f} {y2:.1f}"
        else:
            x1, y1 = a.x + a.w, a.y + a.h / 2
            x2, y2 = b.x, b.y + b.h / 2
            mid = (x1 + x2) / 2
            d = f"M {x1:.1f} {y1:.1f} C {mid:.1f} {y1:.1f}, {mid:.1f} {y2:.1f}, {x2 - 2:.1f} {y2:.1f}"
        parts.append(f'<path class="edge" d="{d}" marker-end="url(#arrow)"><title>{escape(e.label)}</title></path>')
    for nid, p in placed.items():
        n = p.node
        cls = f"node {n.kind}" + (" highlight" if nid == highlight else "")
        rx = 17 if n.kind == PIPELINE else 5
        body = (
            f'<rect x="{p.x:.1f}" y="{p.y:.1f}" width="{p.w:.1f}" height="{p.h:.1f}" rx="{rx}"/>'
            f'<text x="{p.x + 12:.1f}" y="{p.y + p.h / 2 + 4.5:.1f}">'
            f'<tspan class="kind">{"⚙" if n.kind == PIPELINE else "▤"}</tspan> {escape(n.name)}</text>'
            f"<title>{escape(n.kind)} {escape(n.name)}</title>"
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
