"""The lineage graph from the example specs, its layout and its SVG."""

from __future__ import annotations

import pathlib
import xml.etree.ElementTree as ET

from pach_airflow.ui import lineage as lin

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags" / "examples"


def example_specs() -> list[dict]:
    from pach_airflow.spec import dump_spec, load_specs

    return [dump_spec(s) for f in sorted(EXAMPLES.rglob("*")) if f.suffix in (".json", ".yaml", ".yml")
            for s in load_specs(f)]


def edges_of(g: lin.Lineage) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in g.edges}


def test_opencv_examples_give_repo_pipeline_repo_edges():
    specs = [s for s in example_specs() if s["pipeline"]["name"] in ("edges", "montage")]
    g = lin.build_lineage(specs)
    assert edges_of(g) == {
        ("repo:images", "pipeline:edges"), ("pipeline:edges", "repo:edges"),
        ("repo:images", "pipeline:montage"), ("repo:edges", "pipeline:montage"),
        ("pipeline:montage", "repo:montage"),
    }
    labels = {(e.source, e.target): e.label for e in g.edges}
    assert labels[("repo:images", "pipeline:edges")] == "master /*"


def test_every_example_input_and_cron_repo_is_a_node():
    specs = example_specs()
    g = lin.build_lineage(specs, repos=["unused"])
    names = {n.name for n in g.nodes.values() if n.kind == lin.REPO}
    assert "unused" in names
    for spec in specs:
        name = spec["pipeline"]["name"]
        assert f"pipeline:{name}" in g.nodes and f"repo:{name}" in g.nodes
        for repo, _ in lin.iter_input_repos(spec["input"], name):
            assert (f"repo:{repo}", f"pipeline:{name}") in edges_of(g)
    cron = [s for s in specs if "cron" in str(s["input"])]
    assert cron, "the examples have a cron pipeline"


def test_layout_flows_left_to_right_without_overlap():
    g = lin.build_lineage(example_specs())
    lay = lin.layout(g)
    placed = lay.placed
    assert set(placed) == set(g.nodes)
    for e in g.edges:
        assert placed[e.target].x > placed[e.source].x + placed[e.source].w, e
    boxes = list(placed.values())
    for i, a in enumerate(boxes):
        assert 0 <= a.x and a.x + a.w <= lay.width and 0 <= a.y and a.y + a.h <= lay.height
        for b in boxes[i + 1:]:
            assert (a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y), (a, b)


def test_an_edge_that_skips_columns_runs_between_nodes_not_behind_them():
    # images → montage skips the column of the edges pipeline and the column of the edges repo.
    specs = [s for s in example_specs() if s["pipeline"]["name"] in ("edges", "montage")]
    g = lin.build_lineage(specs)
    lay = lin.layout(g)
    long_edges = [i for i, e in enumerate(g.edges) if (e.source, e.target) == ("repo:images", "pipeline:montage")]
    assert len(long_edges) == 1 and len(lay.routes[long_edges[0]]) == 2
    for x_in, x_out, y in lay.routes[long_edges[0]]:
        for p in lay.placed.values():
            if p.x < x_out and x_in < p.x + p.w:  # a node of that column
                assert not (p.y - 2 <= y <= p.y + p.h + 2), (p.node.name, y)
    # Every edge between neighbouring columns takes no lane.
    assert all(not lay.routes.get(i) for i, e in enumerate(g.edges)
               if lay.placed[e.target].layer - lay.placed[e.source].layer == 1)


def test_svg_is_well_formed_with_links_and_escaped_names():
    spec = {"pipeline": {"name": "p1"}, "input": {"cross": [{"pfs": {"repo": "a<b", "glob": "/*"}},
                                                             {"pfs": {"repo": "c", "glob": "/"}}]}}
    g = lin.build_lineage([spec], href=lambda kind, name: f"/pach/{kind}s/{name}?x=1&y=2")
    svg = lin.render_svg(g, highlight="pipeline:p1")
    root = ET.fromstring(svg)  # well-formed XML, entities escaped
    ns = {"s": "http://www.w3.org/2000/svg"}
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any("a<b" in t for t in texts) and any("p1" in t for t in texts)
    assert len(root.findall(".//s:path[@class='edge']", ns)) == 3
    hrefs = {a.get("href") for a in root.iter("{http://www.w3.org/2000/svg}a")}
    assert "/pach/pipelines/p1?x=1&y=2" in hrefs
    assert root.find(".//s:g[@data-node='pipeline:p1']", ns).get("class") == "node pipeline highlight"


def test_a_cycle_does_not_hang_and_empty_graph_says_so():
    a = {"pipeline": {"name": "a"}, "input": {"pfs": {"repo": "b", "glob": "/"}}}
    b = {"pipeline": {"name": "b"}, "input": {"pfs": {"repo": "a", "glob": "/"}}}
    g = lin.build_lineage([a, b])
    assert len(lin.layout(g).placed) == 4
    ET.fromstring(lin.render_svg(g))
    assert "No repos or pipelines yet" in lin.render_svg(lin.Lineage())


def test_neighbourhood_keeps_what_is_near():
    g = lin.build_lineage(example_specs())
    sub = lin.neighbourhood(g, "pipeline:montage", hops=1)
    assert set(sub.nodes) == {"pipeline:montage", "repo:images", "repo:edges", "repo:montage"}
    assert all(e.source in sub.nodes and e.target in sub.nodes for e in sub.edges)


def test_pipeline_nodes_carry_their_last_job_state():
    specs = [s for s in example_specs() if s["pipeline"]["name"] in ("edges", "montage")]
    g = lin.build_lineage(specs, states={"edges": "JOB_FAILURE", "montage": "JOB_SUCCESS"})
    assert g.nodes["pipeline:edges"].state == "JOB_FAILURE" and g.nodes["repo:edges"].state == ""
    root = ET.fromstring(lin.render_svg(g))
    classes = {el.get("data-node"): el.get("class") for el in root.iter("{http://www.w3.org/2000/svg}g")}
    assert classes["pipeline:edges"] == "node pipeline st-failure"
    assert classes["pipeline:montage"] == "node pipeline st-success"
    assert {"id": "pipeline:edges", "kind": "pipeline", "name": "edges", "state": "JOB_FAILURE"} in \
        g.to_dict()["nodes"]
