"""explainaug.evaluate."""
