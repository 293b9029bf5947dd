"""The one error the local PanDA stack raises when it cannot come up or answer."""


class StackError(RuntimeError):
    """A part of the local PanDA stack (database, server, JEDI, the Harvester stand-in) failed."""
