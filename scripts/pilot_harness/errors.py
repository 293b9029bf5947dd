"""The one error the harness raises for anything that stops it from running a pilot."""


class HarnessError(RuntimeError):
    """The harness cannot run the pilot (missing tool or pilot, bad job definition, pilot did not end)."""
