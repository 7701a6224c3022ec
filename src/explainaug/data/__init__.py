"""explainaug.data."""
