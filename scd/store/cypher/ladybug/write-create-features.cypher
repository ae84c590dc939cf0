// the rest, created outright: this process holds the database's only write lock, so nothing can
// create them in between; MERGE would do the same work several times slower in LadybugDB 0.22
UNWIND $rows AS r
CREATE (f:Feature {id: r.id, model: r.model, sae: r.sae, hook: r.hook, layer: r.layer, kind: r.kind, idx: r.idx,
  top_promoted: r.top_promoted, top_promoted_logits: r.top_promoted_logits, top_suppressed: r.top_suppressed,
  top_suppressed_logits: r.top_suppressed_logits, neuronpedia_url: r.neuronpedia_url, label: r.label,
  top_token: r.top_token})
