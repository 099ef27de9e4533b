"""minilm: a from-scratch MiniLM sentence encoder and the losses, optimiser and trainer to fine-tune it."""

__version__ = "0.1.0"
