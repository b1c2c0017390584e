"""Decontamination against benchmarks (in progress)."""
