"""Evaluation: confusion-matrix metrics, whole-split scoring, figures."""
