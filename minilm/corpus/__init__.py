"""``minilm encode``: a file of any size into a .npy in bounded memory, resumable, sharded and joined again."""
