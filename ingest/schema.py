"""The graph model, shared by both stores.

    (:Prompt)<-[:EXPLAINS]-(:Circuit)-[:HAS]->(:Node)-[:OF]->(:Feature)
                                          (:Node)-[:FEEDS {weight}]->(:Node)

* ``Feature``  global, one per SAE latent (and per SAE error term, input token, logit token); shared by every
  circuit. Key ``id`` = ``{model}/{sae_set}/{hook}/{idx}`` (see scd.circuit). Properties: model, sae, hook,
  layer, kind (token|resid|attn|mlp|transcoder|error|logit), idx (latent index; -1 for error terms; token id for
  token/logit), top_promoted / top_suppressed (token strings, most promoted first), top_promoted_logits /
  top_suppressed_logits, neuronpedia_url, label.
* ``Prompt``   key ``id`` = hash(model, text, target). text, model, tokens (string list, BOS included), target,
  target_prob, loss, top_completions (strings) and top_completion_probs (floats, same order).
* ``Circuit``  key ``id`` = hash(prompt, SAE set, parameters). prompt_id, model, sae_set, method, metric,
  top_k, edge_threshold, params (JSON text of all parameters), metric_value, faithfulness and completeness
  (set only where computed; never NaN), n_nodes, n_edges, created_at, and ``request``: a hash of the ingest
  request that produced it (model, SAE set, prompt text, explicit target, discovery options), so a rerun of
  ``scd ingest`` skips a finished prompt without recomputing its circuit (unset for circuits written otherwise).
* ``Node``     key ``id`` = ``{circuit_id}/{node id within the circuit}``. circuit_id, kind, layer, hook, idx,
  pos, token, activation, attribution.
* ``FEEDS``    upstream -> downstream direct effect; ``weight`` (float).

Every key has a uniqueness constraint (Neo4j) or is the primary key (LadybugDB). Feature.kind/hook, Prompt.text
and Circuit.request lookups are indexed in Neo4j; LadybugDB indexes primary keys only. Node.circuit_id and
FEEDS.weight have no index on purpose: queries reach nodes from their Circuit and filter on abs(weight), which a
range index cannot serve, and each index costs every node or edge write.

Reserved-word notes: LadybugDB refuses a property called ``index``, so the latent index is ``idx`` everywhere;
and ``FOR`` is a keyword there (``[:FOR]`` is a parse error unless back-quoted), so the circuit -> prompt
relationship is ``EXPLAINS``: a circuit explains the model's prediction on its prompt.
"""

from __future__ import annotations

LABELS = ("Feature", "Prompt", "Circuit", "Node")
RELATIONSHIPS = ("EXPLAINS", "HAS", "OF", "FEEDS")

NEO4J_SCHEMA = [
    "CREATE CONSTRAINT feature_id IF NOT EXISTS FOR (f:Feature) REQUIRE f.id IS UNIQUE",
    "CREATE CONSTRAINT prompt_id IF NOT EXISTS FOR (p:Prompt) REQUIRE p.id IS UNIQUE",
    "CREATE CONSTRAINT circuit_id IF NOT EXISTS FOR (c:Circuit) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
    "CREATE INDEX circuit_request IF NOT EXISTS FOR (c:Circuit) ON (c.request)",
    "CREATE INDEX feature_kind IF NOT EXISTS FOR (f:Feature) ON (f.kind)",
    "CREATE INDEX feature_hook IF NOT EXISTS FOR (f:Feature) ON (f.hook)",
    "CREATE INDEX prompt_text IF NOT EXISTS FOR (p:Prompt) ON (p.text)",
]

LADYBUG_SCHEMA = [
    "CREATE NODE TABLE IF NOT EXISTS Feature(id STRING PRIMARY KEY, model STRING, sae STRING, hook STRING, "
    "layer INT64, kind STRING, idx INT64, top_promoted STRING[], top_promoted_logits DOUBLE[], "
    "top_suppressed STRING[], top_suppressed_logits DOUBLE[], neuronpedia_url STRING, label STRING)",
    "CREATE NODE TABLE IF NOT EXISTS Prompt(id STRING PRIMARY KEY, text STRING, model STRING, tokens STRING[], "
    "target STRING, target_prob DOUBLE, loss DOUBLE, top_completions STRING[], top_completion_probs DOUBLE[])",
    "CREATE NODE TABLE IF NOT EXISTS Circuit(id STRING PRIMARY KEY, prompt_id STRING, model STRING, "
    "sae_set STRING, method STRING, metric STRING, top_k INT64, edge_threshold DOUBLE, params STRING, "
    "metric_value DOUBLE, faithfulness DOUBLE, completeness DOUBLE, n_nodes INT64, n_edges INT64, "
    "created_at STRING, request STRING)",
    "CREATE NODE TABLE IF NOT EXISTS Node(id STRING PRIMARY KEY, circuit_id STRING, kind STRING, layer INT64, "
    "hook STRING, idx INT64, pos INT64, token STRING, activation DOUBLE, attribution DOUBLE)",
    "CREATE REL TABLE IF NOT EXISTS EXPLAINS(FROM Circuit TO Prompt)",
    "CREATE REL TABLE IF NOT EXISTS HAS(FROM Circuit TO Node)",
    "CREATE REL TABLE IF NOT EXISTS OF(FROM Node TO Feature)",
    "CREATE REL TABLE IF NOT EXISTS FEEDS(FROM Node TO Node, weight DOUBLE)",
]
