// the Circuit, explaining its Prompt
MATCH (p:Prompt {id: $r.prompt_id})
CREATE (c:Circuit {id: $r.id})-[:EXPLAINS]->(p)
SET c += $r
