// the fold lock (see scd.store.aggregates): MERGE under a uniqueness constraint, then a write that locks the node
MERGE (m:ScdMeta {id: 'store'}) SET m.folded_at = datetime()
