"""Deduplication within a kind: exact (content hash) and near-duplicate (MinHash LSH)."""
