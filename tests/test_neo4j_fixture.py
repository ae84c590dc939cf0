"""The test suite really reaches a Neo4j 5.26 server: write, read back, and the server's version."""

from neo4j import GraphDatabase


def _driver(config):
    auth = (config.neo4j_user, config.neo4j_password) if config.neo4j_password else None
    return GraphDatabase.driver(config.neo4j_uri, auth=auth)


def test_neo4j_round_trip(neo4j_config):
    with _driver(neo4j_config) as driver:
        driver.execute_query(
            "CREATE (:Probe {name: $name, weights: $w})",
            name="x",
            w=[0.5, -1.0],
            database_=neo4j_config.neo4j_database,
        )
        records, _, _ = driver.execute_query(
            "MATCH (p:Probe) RETURN p.name AS name, p.weights AS w", database_=neo4j_config.neo4j_database
        )
        assert [(r["name"], r["w"]) for r in records] == [("x", [0.5, -1.0])]
        records, _, _ = driver.execute_query("CALL dbms.components() YIELD versions RETURN versions[0] AS v")
        assert records[0]["v"].startswith("5.")


def test_each_test_starts_clean(neo4j_config):
    with _driver(neo4j_config) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (n) RETURN count(n) AS n", database_=neo4j_config.neo4j_database
        )
        assert records[0]["n"] == 0
