"""The node: CPU, GPUs, the framework, memory limits and the job's share of them; detected before anything is staged."""
