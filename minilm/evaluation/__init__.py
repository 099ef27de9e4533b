"""Evaluators: the metrics (as sentence-transformers computes them) and the evaluators a recipe or command names."""
