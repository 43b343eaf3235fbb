"""Internet Topology Zoo backbones with Repetita link delays (``*.graph`` files).

Format (shared/data/README.md)::

    NODES <count>
    label x y
    <id>_<City> <longitude> <latitude>
    ...
    EDGES <count>
    label src dest weight bw delay
    edge_<i> <src id> <dest id> <igp weight> <bandwidth kbit/s> <delay in microseconds>
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from distalloc._validation import ValidationError, describe, read_text
from distalloc.llm.limits import check_memory

__all__ = ["Topology", "read_topology", "find_data_dir", "TOPOLOGY_ALIASES"]

#: Names people use for the shipped backbones -> file stem.
TOPOLOGY_ALIASES = {
    "abvt": "Abvt", "abovenet": "Abvt",
    "bellcanada": "Bellcanada",
    "gtsce": "GtsCe", "gts-ce": "GtsCe",
    "attmpls": "AttMpls", "att": "AttMpls",
}


@dataclass(frozen=True)
class Topology:
    """A backbone graph: node labels and the one-way shortest-path delay matrix (ms)."""

    name: str
    node_labels: list[str]
    delay_ms: np.ndarray  # (nodes, nodes) one-way shortest-path delay

    @property
    def num_nodes(self) -> int:
        return len(self.node_labels)


def find_data_dir() -> Path | None:
    """``$DISTALLOC_DATA_DIR``, else the first ``shared/data`` beside the working directory
    or beside the source checkout (``../shared/data`` relative to the project root)."""
    env = os.environ.get("DISTALLOC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    for base in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        cand = base / "shared" / "data"
        if (cand / "topologies").is_dir():
            return cand
    return None


def _resolve(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".graph" or path.exists():
        return path
    stem = TOPOLOGY_ALIASES.get(name.lower(), name)
    data = find_data_dir()
    shown = describe(name)[1:-1]
    if data is None:
        raise ValidationError(
            f"Topology '{shown}': data folder not found (set DISTALLOC_DATA_DIR to shared/data).")
    folder = data / "topologies"
    source = " (from DISTALLOC_DATA_DIR)" if os.environ.get("DISTALLOC_DATA_DIR") else ""
    cand = folder / f"{stem}.graph"
    if not cand.is_file():
        known = sorted(p.stem for p in folder.glob("*.graph")) if folder.is_dir() else []
        if not known:
            raise ValidationError(f"Unknown topology '{shown}': no *.graph files in "
                                  f"'{folder}'{source}; point DISTALLOC_DATA_DIR at the "
                                  "shared/data folder.")
        raise ValidationError(f"Unknown topology '{shown}' (known in '{folder}'{source}: "
                              f"{', '.join(known)}).")
    return cand


def read_topology(name: str) -> Topology:
    """Parse a ``.graph`` file (by path or by name) and compute all-pairs one-way delays.

    Raises
    ------
    ValidationError
        bad counts, unknown node ids, negative or non-finite delays, a disconnected graph.
    """
    path = _resolve(name)
    text = read_text(path, "Topology file")
    # (line number, fields) of the non-blank lines; messages name line numbers, never content
    lines = [(i, ln.split()) for i, ln in enumerate(text.splitlines(), start=1)]
    lines = [(i, ln) for i, ln in lines if ln]
    where = f"topology file '{path.name}'"

    def count(at: int, keyword: str) -> int:
        if at >= len(lines) or lines[at][1][0] != keyword:
            line = lines[at][0] if at < len(lines) else len(text.splitlines()) + 1
            raise ValidationError(f"{where}: line {line} must be '{keyword} <count>'.")
        fields = lines[at][1]
        if len(fields) != 2 or not (fields[1].isascii() and fields[1].isdigit()):
            raise ValidationError(f"{where}: line {lines[at][0]} must be '{keyword} <count>' "
                                  "with a decimal count.")
        return int(fields[1])

    n_nodes = count(0, "NODES")
    if n_nodes < 2:
        raise ValidationError(f"{where}: needs at least 2 nodes. Got {n_nodes}.")
    if n_nodes > len(lines):
        raise ValidationError(f"{where}: NODES count {n_nodes} does not match the node lines.")
    # the all-pairs delay matrix (and Dijkstra's work array) is n x n doubles
    check_memory(16.0 * n_nodes * n_nodes, f"the all-pairs delays of a {n_nodes}-node topology")
    node_rows = [fields for _, fields in lines[2:2 + n_nodes]]
    edges_at = 2 + n_nodes
    if len(node_rows) != n_nodes or edges_at >= len(lines) or lines[edges_at][1][0] != "EDGES":
        raise ValidationError(f"{where}: NODES count {n_nodes} does not match the node lines.")
    labels = [row[0] for row in node_rows]
    n_edges = count(edges_at, "EDGES")
    edge_rows = lines[edges_at + 2:]
    if len(edge_rows) != n_edges:
        raise ValidationError(f"{where}: EDGES count {n_edges} does not match {len(edge_rows)} edge lines.")
    src = np.empty(n_edges, dtype=np.int64)
    dst = np.empty(n_edges, dtype=np.int64)
    delay_us = np.empty(n_edges, dtype=np.float64)
    for i, (line, row) in enumerate(edge_rows):
        try:
            s, d, dl = int(row[1]), int(row[2]), float(row[5])
        except (IndexError, ValueError):
            raise ValidationError(f"{where}: line {line} is not an edge line "
                                  "'label src dest weight bw delay'.") from None
        if not (0 <= s < n_nodes and 0 <= d < n_nodes):
            bad = s if not 0 <= s < n_nodes else d
            raise ValidationError(f"{where}: line {line} names unknown node id "
                                  f"{describe(bad)} (ids are 0..{n_nodes - 1}).")
        if not np.isfinite(dl) or dl < 0 or dl > 1e15:
            raise ValidationError(f"{where}: line {line} has delay {dl:g} µs (must be in "
                                  "[0, 1e15]).")
        src[i], dst[i], delay_us[i] = s, d, dl
    # keep the fastest of parallel links; csgraph drops explicit zeros, so a zero-delay
    # link is stored as a tiny positive delay (1e-12 ms, far below any reported digit)
    order = np.lexsort((delay_us, dst, src))
    first = np.ones(n_edges, dtype=bool)
    first[1:] = (src[order][1:] != src[order][:-1]) | (dst[order][1:] != dst[order][:-1])
    keep = order[first]
    weights = np.maximum(delay_us[keep] / 1000.0, 1e-12)
    graph = csr_matrix((weights, (src[keep], dst[keep])), shape=(n_nodes, n_nodes))
    n_comp, _ = connected_components(graph, directed=True, connection="strong")
    if n_comp != 1:
        raise ValidationError(f"{where}: graph is disconnected ({n_comp} strongly connected components).")
    delay_ms = dijkstra(graph, directed=True)
    return Topology(name=path.stem, node_labels=labels, delay_ms=delay_ms)
