"""Pure tensor math that every trainer shares: advantages, KL, losses, reductions, the update loop.

Nothing here imports gymnasium, transformers or torch.distributed (tests/unit/test_layers.py checks it).
"""
