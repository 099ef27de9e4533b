"""The training loop and what it is made of: step, gradient cache, optimiser, samplers, checkpoints, torchrun.

Start at ``trainer.py`` (the loop) and ``step.py`` (one step's forward and backward).
"""
