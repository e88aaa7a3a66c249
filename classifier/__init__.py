"""Lesion classifiers: the judge of whether synthetic images help (see the classifier issue)."""
