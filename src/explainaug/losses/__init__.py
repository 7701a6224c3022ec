"""explainaug.losses."""
