// the Circuit, explaining its Prompt (LadybugDB has no `SET c += map`: every column named)
MATCH (p:Prompt {id: $prompt_id})
CREATE (c:Circuit {id: $id, prompt_id: $prompt_id, model: $model, sae_set: $sae_set, method: $method,
  metric: $metric, top_k: $top_k, edge_threshold: $edge_threshold, params: $params, metric_value: $metric_value,
  faithfulness: $faithfulness, completeness: $completeness, ablation: $ablation, selection: $selection, n_nodes: $n_nodes, n_edges: $n_edges,
  created_at: $created_at, request: $request, aggregated: $aggregated, saes: $saes, scores: $scores,
  target_source: $target_source})-[:EXPLAINS]->(p)
