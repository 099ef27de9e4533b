"""Optional fused kernels (imported as ``minilm.kernels``).

Nothing here is required: every kernel has a reference path in ``minilm/`` and a test comparing the two.
"""
