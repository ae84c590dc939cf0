// only Tokens fold-existing-tokens did not find: folds run one at a time (the fold lock), so CREATE is safe
UNWIND $texts AS t CREATE (k:Token {id: t}) RETURN k.id AS id, NULL AS handle
