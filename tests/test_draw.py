"""Circuit pictures: every node is placed in its position's column and its sublayer's row, and files appear."""

from click.testing import CliRunner
from PIL import Image

from scd.cli import main
from scd.report.draw import _layout, sublayer_rank

from .synthetic import synthetic_circuit


def test_layout_puts_nodes_in_forward_order():
    circuit = synthetic_circuit(3)
    xy, ranks = _layout(circuit)
    assert ranks == sorted(ranks)
    for n in circuit.nodes:
        x, y = xy[n.id]
        assert abs(x - n.pos) < 0.5  # inside its position's column
        if n.kind == "logit":
            assert y == len(ranks)
        else:
            assert ranks[int(y)] == sublayer_rank(n)
    token = next(n for n in circuit.nodes if n.kind == "token")
    later = [n for n in circuit.nodes if n.kind not in ("token", "logit")]
    assert all(sublayer_rank(token) < sublayer_rank(n) for n in later)


def test_draw_command_writes_a_png(tmp_path):
    path = tmp_path / "c.json"
    synthetic_circuit(4).to_json(path)
    result = CliRunner().invoke(main, ["draw", str(path), "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "c.png") as im:
        assert im.size[0] > 400 and im.size[1] > 300


def test_draw_command_rejects_a_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["draw", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_draw_command_draws_a_stored_circuit_by_id(tmp_path):
    from scd.core.config import StoreConfig
    from scd.store import open_store

    circuit = synthetic_circuit(4)
    store = tmp_path / "store"
    with open_store(StoreConfig(path=store)) as s:
        s.write_circuit(circuit)
    out = tmp_path / "stored.png"
    result = CliRunner().invoke(main, ["draw", circuit.id, "--store", str(store), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.size[0] > 400 and im.size[1] > 300
