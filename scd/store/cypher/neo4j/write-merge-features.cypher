// a circuit's Features not yet stored (MERGE: a concurrent writer may create one meanwhile)
UNWIND $rows AS r
MERGE (f:Feature {id: r.id})
ON CREATE SET f.model = r.model, f.sae = r.sae, f.hook = r.hook, f.layer = r.layer, f.kind = r.kind, f.idx = r.idx,
  f.top_promoted = r.top_promoted, f.top_promoted_logits = r.top_promoted_logits,
  f.top_suppressed = r.top_suppressed, f.top_suppressed_logits = r.top_suppressed_logits,
  f.neuronpedia_url = r.neuronpedia_url, f.label = r.label, f.top_token = r.top_token
