"""Small, pure filter functions: a document in, a verdict (keep or drop, a reason, signals) out."""
