"""Model cards: the README.md of a saved model, in the structure of the cards sentence-transformers generates.

Every saved model gets the model's part: details and architecture (read from the files just saved), usage with minilm
and with sentence-transformers (on example sentences, with the similarities this model gives them) and framework
versions. A model written by ``minilm train`` also gets its training (``TrainingCard``, filled in by the trainer): the
training data's size, column types, token-length statistics (with this model's tokenizer) and samples, the loss with
its settings and citation, the hyperparameters, the log table and the evaluation results. Nothing here imports the
training code: the trainer passes what it knows.

minilm's own card carries a marker holding the hash of its text. A README.md without it, or edited since minilm wrote
it, is someone else's and is never overwritten (``write_card`` keeps it).
"""

from minilm.card.training_part import LossCard, TrainingCard, column_stats
from minilm.card.write import CARD_NAME, is_minilm_card, render_card, write_card

__all__ = ["CARD_NAME", "LossCard", "TrainingCard", "column_stats", "is_minilm_card", "render_card", "write_card"]
