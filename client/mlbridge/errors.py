"""Errors mlbridge raises to its users: each says what to fix."""


class MlbridgeError(Exception):
    """A problem the user can fix; the CLI prints it as one line, without a traceback."""
