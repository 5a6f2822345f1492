"""The error type for problems a user can act on."""


class TfpipeError(Exception):
    """A failure whose message says what went wrong, where, and what to do.

    Tasks raise it instead of letting a bare traceback reach the user; the
    Luigi failure summary and the command-line helpers print only the message.
    """
