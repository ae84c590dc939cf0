"""`scd doctor` reports facts and fails in one line on an unreachable Neo4j."""

from importlib.metadata import version

from click.testing import CliRunner

from scd.cli import main


def test_doctor_reports_versions_and_a_live_neo4j(neo4j_config, tmp_path):
    result = CliRunner().invoke(
        main, ["doctor", "--neo4j", neo4j_config.neo4j_uri, "--store", str(tmp_path / "s")]
    )
    out = result.output
    assert f"torch             {version('torch')}" in out
    assert f"sae-lens          {version('sae-lens')}" in out
    assert "Neo4j 5.26" in out
    assert str(tmp_path / "s") in out
    assert "Traceback" not in out


def test_doctor_unreachable_neo4j_is_one_line_and_nonzero(tmp_path):
    result = CliRunner().invoke(main, ["doctor", "--neo4j", "bolt://127.0.0.1:1", "--store", str(tmp_path)])
    assert result.exit_code == 1
    bad = [line for line in result.output.splitlines() if line.startswith("BAD") and "neo4j server" in line]
    assert (
        len(bad) == 1 and bad[0].startswith("BAD") and "cannot reach Neo4j" in bad[0]
    )  # the store's own message (scd.store.neo4j)
    assert "Traceback" not in result.output
