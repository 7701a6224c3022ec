"""explainaug.augment."""
