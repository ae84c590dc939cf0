// fold phase 2: each claimed circuit's prompt text, for the example prompts an aggregate relationship keeps
UNWIND $ids AS cid
MATCH (c:Circuit {id: cid})-[:EXPLAINS]->(p:Prompt)
RETURN c.id AS id, p.text AS text
