"""A real PanDA on loopback: PostgreSQL with the upstream schema, panda-server and JEDI from PyPI.

    python -m scripts.panda_local up --dir /tmp/panda     # prints the URLs, Ctrl-C stops it
"""
