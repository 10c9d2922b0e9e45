"""Errors that the CLI and the nodes report as one clear line."""


class DealError(Exception):
    """A user-facing failure: its message names what is wrong and where.

    The CLI prints ``deal: <message>`` and exits non-zero; nodes log it and keep running.
    """
