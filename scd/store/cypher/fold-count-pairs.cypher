// how many relationships of one aggregate type are stored: none (the first fold) -> no pair to read back
MATCH ()-[x:__REL__]->() RETURN count(x) AS n
