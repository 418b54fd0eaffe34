"""Errors the runtime reports to its caller (printed as runc prints them, exit status 1)."""


class RuntimeFailure(Exception):
    """An operation failed; the message is what the user sees."""


class ContainerNotFound(RuntimeFailure):
    """No container with that id under --root."""
