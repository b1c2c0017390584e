"""Beam composition: each stage is a PTransform built from the pure functions of corpus/ and filters/."""
