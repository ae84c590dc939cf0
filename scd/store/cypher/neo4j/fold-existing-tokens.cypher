// with each Token's element id (see fold-top-tokens)
UNWIND $texts AS t MATCH (k:Token {id: t}) RETURN k.id AS id, elementId(k) AS handle
