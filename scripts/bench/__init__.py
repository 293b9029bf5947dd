"""Benchmarks: the driver `run` and one module per area, each with `main(argv) -> int`."""
