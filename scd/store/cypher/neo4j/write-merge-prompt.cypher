// the circuit's Prompt, shared by every circuit of the same text and model
MERGE (p:Prompt {id: $r.id})
ON CREATE SET p.text = $r.text, p.model = $r.model, p.tokens = $r.tokens, p.target = $r.target,
  p.target_prob = $r.target_prob, p.loss = $r.loss, p.top_completions = $r.top_completions,
  p.top_completion_probs = $r.top_completion_probs, p.token_ids = $r.token_ids, p.target_id = $r.target_id
