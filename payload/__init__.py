"""DUNE ProtoDUNE-SP beam/cosmic pixel classification: event files, synthetic events, the
FC-DenseNet, training, inference and metrics. Knows nothing of PanDA; usable from a notebook.

The entry points for job wrappers are in `payload.api`.
"""
__version__ = "0.1.0"
