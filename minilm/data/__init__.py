"""Training and evaluation data: CSV / TSV / JSONL / STS files read into the roles a loss or evaluator needs."""
