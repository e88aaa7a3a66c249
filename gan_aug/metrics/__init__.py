"""Synthetic-set quality: torch-fidelity metrics per class, lesion-feature extractor, CAS, memorization."""
