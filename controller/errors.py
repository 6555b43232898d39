"""Exceptions that carry a message meant for the user."""


class UserError(Exception):
    """A problem with the user's input (a file, a flag, a setting).

    The CLI prints ``scaleahead: error: <message>`` and exits with code 2; the
    message must name what is wrong and where (file, line, setting path).
    """
