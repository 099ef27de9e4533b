"""Fine-tuning as an application: recipes, data, samplers, the trainer and its step, the optimiser, torchrun.

Start at ``run.py`` (a recipe becomes data, sampler, loss, evaluator and trainer) and ``trainer.py`` (the loop).
"""
