"""The reference network: its training (`train_reference`) and the physics figures the README cites."""
