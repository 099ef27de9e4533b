"""The speed machinery, kept beside the model (``minilm/model.py``) and applied to it from outside.

- ``int8.py``: a dynamically int8-quantised copy of the model for ``encode(precision="int8")``.
- ``workers.py``: encode batches two at a time on CPU, one core each.

Every piece has a test against the plain model path.
"""
