"""Getting a model in and out: weights through one key table, the tokenizer, the hub, the sentence-transformers
folder."""
