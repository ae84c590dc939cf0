"""The graph model, shared by both stores.

    (:Prompt)<-[:EXPLAINS]-(:Circuit)-[:HAS]->(:Node)-[:OF]->(:Feature)
                                          (:Node)-[:FEEDS {weight, share}]->(:Node)
    pre-aggregated, feature level:        (:Feature)-[:FEEDS_FEATURE {aggregate}]->(:Feature)
                                          (:Feature)-[:FEEDS_TOKEN {aggregate}]->(:Token)-[:TOKEN_FEEDS {aggregate}]->(:Feature)

* ``Feature``  global, one per SAE latent (and per SAE error term, input token, logit token); shared by every
  circuit. Key ``id`` = ``{model}/{sae_set}/{hook}/{idx}`` (see scd.core.circuit). Properties: model, sae, hook,
  layer, kind (token|resid|attn|mlp|transcoder|error|logit), idx (latent index; -1 for error terms; token id for
  token/logit), top_promoted / top_suppressed (token strings, most promoted first), top_promoted_logits /
  top_suppressed_logits, neuronpedia_url, label, and ``top_token`` = top_promoted[0] (unset where top_promoted is
  empty; denormalised so "features whose top token is X" is an index lookup). The feature card
  (scd.discovery.labels, written by ``scd features label``): ``label`` (automatic, from what follows), ``frequency``
  and ``max_activation`` over a reference corpus, ``top_contexts`` (text before the firing token, the token in
  brackets) with ``top_activations``; unset until labelled.
* ``Prompt``   key ``id`` = hash(model, text, target). text, model, tokens (string list, BOS included), target,
  target_prob, loss, top_completions (strings) and top_completion_probs (floats, same order), token_ids (the
  tokenizer's ids of ``tokens``) and target_id.
* ``Circuit``  key ``id`` = hash(prompt, SAE set, parameters). prompt_id, model, sae_set, method, metric,
  top_k, edge_threshold, params (JSON text of all parameters), metric_value, faithfulness and completeness
  (set only where computed; never NaN), ``ablation`` (how they were measured: "zero" or "mean", then the error-term
  handling, e.g. "zero/circuit"; see scd.discovery.evaluate), ``selection`` (how the nodes were chosen: "top-k",
  or "influence:0.8" for scd.discovery.selection's pruning), n_nodes, n_edges, created_at, and ``request``: a hash of the ingest
  request that produced it (model, SAE set, prompt text, explicit target, discovery options), so a rerun of
  ``scd ingest`` skips a finished prompt without recomputing its circuit (unset for circuits written otherwise);
  ``aggregated`` (see the aggregates below); and what the columns above leave out of the circuit, so that
  scd.store.readback rebuilds it with its id: ``saes`` (JSON text of the hook -> SAE map, part of the id),
  ``scores`` (JSON text of every score: m_model, m_empty, ... and ``ablation``) and ``target_source``.
* ``Node``     key ``id`` = ``{circuit_id}/{node id within the circuit}``. circuit_id, feature_id (the id of the
  Feature it is OF, denormalised), kind, layer, hook, idx, pos, token, activation, attribution, and ``effect``: the
  measured drop of the circuit's metric when the node's latent is ablated on the prompt (scored circuits' SAE
  latents; scd.discovery.effects), unset otherwise.
* ``FEEDS``    upstream -> downstream direct effect; ``weight`` (float) and ``share`` = |weight| / the strongest
  |weight| in its circuit (in [0, 1]; one scale for "strong" across metrics and models).
* ``Token``    key ``id`` = a token string: one per token that is some Feature's top_token and takes part in an aggregate.
* ``FEEDS_FEATURE`` / ``FEEDS_TOKEN`` / ``TOKEN_FEEDS``: the FEEDS edges of all circuits, pre-aggregated. FEEDS_FEATURE
  (u)->(d) sums the FEEDS edges from a node of feature u to a node of feature d; FEEDS_TOKEN (u)->(k) those from a
  node of u to a node of ANY feature whose top_token is k; TOKEN_FEEDS (k)->(d) those from a node of any feature
  with top_token k to a node of d. Each carries ``circuits`` (how many circuits have at least one such edge: a
  distinct count within its group, which is why the token groups are their own relationships and not a sum of
  FEEDS_FEATURE), ``n_edges``, ``weight_sum``, ``abs_weight_sum``, ``effect_sum`` and ``effect_circuits`` (over
  the circuits where the upstream Node has a measured ``effect``: their sum, one per circuit, and how many; for
  TOKEN_FEEDS the largest of the token's features' in each circuit), ``example_circuit`` (the smallest circuit
  id) and its 3 strongest circuits, ``example_circuit_1`` .. ``_3`` with ``example_weight_1`` .. ``_3`` (the
  circuit's sum of |weight| in the group), strongest first, unset past the group's circuit count (the queries read
  the prompt texts of these circuits). They are not written with the circuit but *folded* in afterwards, many circuits at once
  (scd.store.aggregates): ``Circuit.aggregated`` is false until its edges are in the layer (unset on circuits
  written before the fold existed, which were aggregated as they were written). Each circuit's group sums are
  exact sums rounded to multiples of 2**-36, so adding them up is exact and the store does not depend on ingest
  or fold order; the sums therefore differ from a sum over the FEEDS edges by at most 1.5e-11 per circuit. A
  feature's token is the stored Feature's top_token (the first writer's metadata). ``feeders`` / ``consumers``
  read these when their answer is the same and no circuit is pending (queries/aggregated/).
* Totals of the layer on its nodes, for the summary line under ``feeders`` / ``consumers`` (how much of the |weight|
  into a target comes from SAE error terms and input tokens) in one node read instead of a pass over every
  relationship: on a Feature, ``in_abs_weight`` = the sum of ``abs_weight_sum`` over its incoming FEEDS_FEATURE,
  ``in_abs_error`` / ``in_abs_token`` the part whose other end is an SAE error term / an input token, and
  ``out_abs_weight`` / ``out_abs_error`` / ``out_abs_logit`` the same over its outgoing FEEDS_FEATURE (the part
  into error terms / logits); on a Token, ``in_*`` over its incoming FEEDS_TOKEN and ``out_*`` over its outgoing
  TOKEN_FEEDS. The fold adds to them (set on every node it touches, 0.0 for a direction without relationships)
  and marks the circuits it folds ``Circuit.in_totals = true``; unset on a Feature no aggregate relationship
  touches. A folded circuit without the mark was folded by an older scd, which did not add to the totals: the
  next fold then computes every total again from the relationships (scd.store.aggregates).

Every key has a uniqueness constraint (Neo4j) or is the primary key (LadybugDB). Feature.kind/hook/top_token,
Prompt.text, Circuit.request and Circuit.aggregated lookups are indexed in Neo4j; LadybugDB indexes primary keys only. Node.circuit_id and
FEEDS.weight have no index on purpose: queries reach nodes from their Circuit and filter on abs(weight), which a
range index cannot serve, and each index costs every node or edge write.

Reserved-word notes: LadybugDB refuses a property called ``index``, so the latent index is ``idx`` everywhere;
and ``FOR`` is a keyword there (``[:FOR]`` is a parse error unless back-quoted), so the circuit -> prompt
relationship is ``EXPLAINS``: a circuit explains the model's prediction on its prompt.
"""

from __future__ import annotations

#: feature cards onto stored Features (scd.discovery.labels); both stores run it in one write transaction
SET_FEATURE_CARDS = """
UNWIND $rows AS r
MATCH (f:Feature {id: r.id})
SET f.label = r.label, f.frequency = r.frequency, f.max_activation = r.max_activation,
  f.top_contexts = r.top_contexts, f.top_activations = r.top_activations
RETURN count(f) AS n
"""
#: the same for latents that never fired: no contexts (LadybugDB cannot bind an empty or all-null list parameter)
SET_FEATURE_CARDS_BARE = """
UNWIND $rows AS r
MATCH (f:Feature {id: r.id})
SET f.label = r.label, f.frequency = r.frequency, f.max_activation = r.max_activation,
  f.top_contexts = NULL, f.top_activations = NULL
RETURN count(f) AS n
"""

LABELS = ("Feature", "Prompt", "Circuit", "Node", "Token")
RELATIONSHIPS = ("EXPLAINS", "HAS", "OF", "FEEDS", "FEEDS_FEATURE", "FEEDS_TOKEN", "TOKEN_FEEDS")
AGGREGATES = ("FEEDS_FEATURE", "FEEDS_TOKEN", "TOKEN_FEEDS")
#: (start label, end label) of each aggregate relationship
AGGREGATE_ENDS = {
    "FEEDS_FEATURE": ("Feature", "Feature"),
    "FEEDS_TOKEN": ("Feature", "Token"),
    "TOKEN_FEEDS": ("Token", "Feature"),
}

NEO4J_SCHEMA = [
    "CREATE CONSTRAINT feature_id IF NOT EXISTS FOR (f:Feature) REQUIRE f.id IS UNIQUE",
    "CREATE CONSTRAINT prompt_id IF NOT EXISTS FOR (p:Prompt) REQUIRE p.id IS UNIQUE",
    "CREATE CONSTRAINT circuit_id IF NOT EXISTS FOR (c:Circuit) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT node_id IF NOT EXISTS FOR (n:Node) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT token_id IF NOT EXISTS FOR (k:Token) REQUIRE k.id IS UNIQUE",
    "CREATE INDEX circuit_request IF NOT EXISTS FOR (c:Circuit) ON (c.request)",
    "CREATE INDEX circuit_aggregated IF NOT EXISTS FOR (c:Circuit) ON (c.aggregated)",
    # the fold lock (scd.store.aggregates); not part of the graph model, so not in LABELS
    "CREATE CONSTRAINT scd_meta_id IF NOT EXISTS FOR (m:ScdMeta) REQUIRE m.id IS UNIQUE",
    "CREATE INDEX feature_kind IF NOT EXISTS FOR (f:Feature) ON (f.kind)",
    "CREATE INDEX feature_hook IF NOT EXISTS FOR (f:Feature) ON (f.hook)",
    "CREATE INDEX feature_top_token IF NOT EXISTS FOR (f:Feature) ON (f.top_token)",
    "CREATE INDEX prompt_text IF NOT EXISTS FOR (p:Prompt) ON (p.text)",
]

#: the aggregate relationships' properties: scalars only -- one list column made LadybugDB 0.22's commit after
#: bulk-adding 40k rows to the table ~20x slower (a COPY micro-benchmark), so the 3 example circuits are 6 columns
_AGG = (
    "circuits INT64, n_edges INT64, weight_sum DOUBLE, abs_weight_sum DOUBLE, effect_sum DOUBLE, effect_circuits INT64, "
    "example_circuit STRING, "
    "example_circuit_1 STRING, example_weight_1 DOUBLE, example_circuit_2 STRING, example_weight_2 DOUBLE, "
    "example_circuit_3 STRING, example_weight_3 DOUBLE"
)
#: a Feature's or Token's totals over its aggregate relationships (see the module docstring)
NODE_TOTALS = (
    "in_abs_weight",
    "in_abs_error",
    "in_abs_token",
    "out_abs_weight",
    "out_abs_error",
    "out_abs_logit",
)
_TOTALS = ", ".join(f"{name} DOUBLE" for name in NODE_TOTALS)
LADYBUG_SCHEMA = [
    "CREATE NODE TABLE IF NOT EXISTS Feature(id STRING PRIMARY KEY, model STRING, sae STRING, hook STRING, "
    "layer INT64, kind STRING, idx INT64, top_promoted STRING[], top_promoted_logits DOUBLE[], "
    "top_suppressed STRING[], top_suppressed_logits DOUBLE[], neuronpedia_url STRING, label STRING, top_token STRING, "
    "frequency DOUBLE, max_activation DOUBLE, top_contexts STRING[], top_activations DOUBLE[], "
    + _TOTALS
    + ")",
    "CREATE NODE TABLE IF NOT EXISTS Prompt(id STRING PRIMARY KEY, text STRING, model STRING, tokens STRING[], "
    "target STRING, target_prob DOUBLE, loss DOUBLE, top_completions STRING[], top_completion_probs DOUBLE[], "
    "token_ids INT64[], target_id INT64)",
    "CREATE NODE TABLE IF NOT EXISTS Circuit(id STRING PRIMARY KEY, prompt_id STRING, model STRING, "
    "sae_set STRING, method STRING, metric STRING, top_k INT64, edge_threshold DOUBLE, params STRING, "
    "metric_value DOUBLE, faithfulness DOUBLE, completeness DOUBLE, ablation STRING, selection STRING, n_nodes INT64, n_edges INT64, "
    "created_at STRING, request STRING, aggregated BOOLEAN, saes STRING, scores STRING, target_source STRING, "
    "in_totals BOOLEAN)",
    "CREATE NODE TABLE IF NOT EXISTS Node(id STRING PRIMARY KEY, circuit_id STRING, kind STRING, layer INT64, "
    "hook STRING, idx INT64, pos INT64, token STRING, activation DOUBLE, attribution DOUBLE, feature_id STRING, effect DOUBLE)",
    "CREATE NODE TABLE IF NOT EXISTS Token(id STRING PRIMARY KEY, " + _TOTALS + ")",
    "CREATE REL TABLE IF NOT EXISTS EXPLAINS(FROM Circuit TO Prompt)",
    "CREATE REL TABLE IF NOT EXISTS HAS(FROM Circuit TO Node)",
    "CREATE REL TABLE IF NOT EXISTS OF(FROM Node TO Feature)",
    "CREATE REL TABLE IF NOT EXISTS FEEDS(FROM Node TO Node, weight DOUBLE, share DOUBLE)",
    f"CREATE REL TABLE IF NOT EXISTS FEEDS_FEATURE(FROM Feature TO Feature, {_AGG})",
    f"CREATE REL TABLE IF NOT EXISTS FEEDS_TOKEN(FROM Feature TO Token, {_AGG})",
    f"CREATE REL TABLE IF NOT EXISTS TOKEN_FEEDS(FROM Token TO Feature, {_AGG})",
]


def tables() -> dict[str, tuple[tuple[str, ...] | None, tuple[tuple[str, str], ...]]]:
    """Every node label and relationship type with its typed properties, read from ``LADYBUG_SCHEMA`` (the one
    place the columns and their types are written down): ``{name: (ends, ((property, type), ...))}`` where
    ``ends`` is ``(start label, end label)`` for a relationship, None for a node label, and the types are
    LadybugDB's (STRING, INT64, DOUBLE, BOOLEAN, STRING[], DOUBLE[]). Used by the bulk CSV export
    (scd.store.bulk), whose headers must never drift from what the stores hold."""
    out: dict[str, tuple[tuple[str, ...] | None, tuple[tuple[str, str], ...]]] = {}
    for ddl in LADYBUG_SCHEMA:
        head, body = ddl.split("(", 1)
        name = head.split()[-1]
        items = [item.strip() for item in body.rstrip(")").split(",")]
        ends = None
        if " REL TABLE " in head:
            _, start, _, end = items.pop(0).split()
            ends = (start, end)
        out[name] = (ends, tuple((item.split()[0], item.split()[1]) for item in items))
    return out
