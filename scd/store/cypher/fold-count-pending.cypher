MATCH (c:Circuit) WHERE c.aggregated = false RETURN count(c) AS n
