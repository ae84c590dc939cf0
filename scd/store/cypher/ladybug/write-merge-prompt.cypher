// the circuit's Prompt, shared by every circuit of the same text and model
MERGE (p:Prompt {id: $id})
ON CREATE SET p.text = $text, p.model = $model, p.tokens = $tokens, p.target = $target, p.target_prob = $target_prob,
  p.loss = $loss, p.top_completions = $top_completions, p.top_completion_probs = $top_completion_probs,
  p.token_ids = $token_ids, p.target_id = $target_id
