"""JEDI task definition (`task`) and the GPU requirement PanDA brokers it with (`brokerage`)."""
