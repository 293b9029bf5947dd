"""`python -m wrapper` runs the transformation."""
from wrapper.main import cli

cli()
