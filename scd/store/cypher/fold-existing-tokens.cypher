UNWIND $texts AS t MATCH (k:Token {id: t}) RETURN k.id AS id, NULL AS handle
