"""explainaug.train."""
