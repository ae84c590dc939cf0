"""Pictures of circuits, for when people would rather look than read.

`draw_circuit` lays a circuit out the way the model computes it: columns are prompt positions (labelled with
their tokens), rows are sublayers in forward order (tokens at the bottom, the target logit at the top). Node size
follows |attribution|, colour its kind; edges are the strongest direct effects, blue when they push the metric
up and red when they push it down. `draw_similarity` shows a group comparison's pairwise Jaccard matrix.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from scd.core.circuit import Circuit, Node  # noqa: E402
from scd.core.hooks import NODE_KINDS, hook_label, stream_position  # noqa: E402

KIND_COLOURS = {
    "token": "#7f7f7f",
    "resid": "#1f77b4",
    "attn": "#ff7f0e",
    "mlp": "#2ca02c",
    "transcoder": "#9467bd",
    "error": "#8c564b",
    "logit": "#000000",
}


def sublayer_rank(node: Node) -> float:
    """Forward-order position of a node's sublayer (scd.core.hooks.stream_position): tokens lowest, logits
    highest; block L's resid_post shares block L+1's resid_pre row."""
    if node.kind == "token":
        return -1.0
    if node.kind == "logit":
        return float("inf")
    where = stream_position(node.hook)
    return float(node.layer) if where is None else where


def _layout(circuit: Circuit) -> tuple[dict[str, tuple[float, float]], list[float]]:
    ranks = sorted({sublayer_rank(n) for n in circuit.nodes if n.kind != "logit"})
    row = {r: i for i, r in enumerate(ranks)}
    top = len(ranks)
    cells: dict[tuple[int, float], list[Node]] = defaultdict(list)
    for n in circuit.nodes:
        cells[(n.pos, sublayer_rank(n))].append(n)
    xy: dict[str, tuple[float, float]] = {}
    for (pos, rank), nodes in cells.items():
        nodes.sort(key=lambda n: -abs(n.attribution))
        y = float(top if rank == float("inf") else row[rank])
        for k, n in enumerate(nodes):
            xy[n.id] = (pos + (k - (len(nodes) - 1) / 2) * min(0.8 / max(len(nodes), 1), 0.18), y)
    return xy, ranks


def draw_circuit(circuit: Circuit, path: str | Path, *, max_edges: int = 80, max_labels: int = 25) -> Path:
    """Render the circuit to PNG/SVG/PDF (by the file's suffix); returns the path."""
    path = Path(path)
    xy, ranks = _layout(circuit)
    n_pos = len(circuit.prompt.tokens)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * n_pos + 2), max(4.0, 0.45 * (len(ranks) + 2) + 1.5)))

    edges = sorted(circuit.edges, key=lambda e: -abs(e.weight))[:max_edges]
    wmax = max((abs(e.weight) for e in edges), default=1.0) or 1.0
    for e in edges:
        if e.source not in xy or e.target not in xy:
            continue
        (x0, y0), (x1, y1) = xy[e.source], xy[e.target]
        strength = abs(e.weight) / wmax
        ax.plot(
            [x0, x1],
            [y0, y1],
            color="#1f77b4" if e.weight > 0 else "#d62728",
            alpha=0.15 + 0.75 * strength,
            linewidth=0.4 + 3.0 * strength,
            zorder=1,
        )

    amax = max((abs(n.attribution) for n in circuit.nodes), default=1.0) or 1.0
    for n in circuit.nodes:
        x, y = xy[n.id]
        ax.scatter(
            [x],
            [y],
            s=25 + 350 * abs(n.attribution) / amax,
            color=KIND_COLOURS.get(n.kind, "#8c564b"),
            edgecolors="white",
            linewidths=0.5,
            zorder=2,
        )

    labelled = sorted(
        (n for n in circuit.nodes if n.kind not in ("token",)), key=lambda n: -abs(n.attribution)
    )
    features = {f.id: f for f in circuit.features}
    for n in labelled[:max_labels]:
        f = features.get(n.feature_id)
        hint = f"→{f.top_promoted[0]!r}" if f is not None and f.top_promoted else ""
        text = (
            "err"
            if n.kind == "error"
            else (repr(circuit.prompt.target) if n.kind == "logit" else f"{n.index}{hint}")
        )
        x, y = xy[n.id]
        ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7, zorder=3)

    for kind in NODE_KINDS:
        if any(n.kind == kind for n in circuit.nodes):
            ax.scatter([], [], color=KIND_COLOURS[kind], label=kind, s=30)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)

    ax.set_xticks(range(n_pos))
    ax.set_xticklabels([repr(t)[1:-1] for t in circuit.prompt.tokens], fontsize=8)
    hooks_by_rank: dict[float, str] = {}
    for n in circuit.nodes:
        if n.kind != "logit":
            hooks_by_rank.setdefault(
                sublayer_rank(n),
                "tokens" if n.kind == "token" else hook_label(n.hook),
            )
    ax.set_yticks(range(len(ranks) + 1))
    ax.set_yticklabels([hooks_by_rank[r] for r in ranks] + ["logit"], fontsize=7)
    ax.set_xlim(-0.6, n_pos - 0.4)
    ax.set_ylim(-0.6, len(ranks) + 0.6)
    ax.set_title(
        f"{circuit.prompt.text!r} → {circuit.prompt.target!r} (p={circuit.prompt.target_prob:.2g}); "
        f"{len(circuit.nodes)} nodes, top {len(edges)} of {len(circuit.edges)} edges",
        fontsize=9,
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def draw_similarity(
    matrix: pd.DataFrame, path: str | Path, *, title: str = "Jaccard similarity of feature sets"
) -> Path:
    """Heatmap of a square similarity matrix whose index and columns are prompt labels."""
    path = Path(path)
    k = len(matrix)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * k + 3), max(3.5, 0.45 * k + 2)))
    im = ax.imshow(matrix.to_numpy(dtype=float), vmin=0.0, vmax=1.0, cmap="viridis")
    labels = [str(x)[:28] for x in matrix.index]
    ax.set_xticks(range(k))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k))
    ax.set_yticklabels(labels, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
