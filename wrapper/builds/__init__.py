"""The model builds a manifest offers and the one chosen for this node."""
