"""``minilm encode``: a file of any size into a .npy in bounded memory, resumable, sharded and joined again."""

# The names of the module this package replaced (``minilm.corpus`` was one file), so old imports keep working.
from minilm.corpus.encode import CorpusOptions, encode_file

__all__ = ["CorpusOptions", "encode_file"]
