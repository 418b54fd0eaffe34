"""The errors the engine raises; the server turns each into Docker's status and message.

Docker's daemon classifies every error by kind (moby's `errdefs`) and maps the kind to an
HTTP status; clients key their behaviour on that status (the CLI prints "No such
container" on 404, compose retries on 409, ...). Raising one of these classes is how an
engine service picks the status without knowing anything about HTTP.
"""

from __future__ import annotations

from typing import ClassVar


class APIError(Exception):
    """An error with a status code; the response body is `{"message": str(error)}`."""

    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ServerError(APIError):
    """Something failed inside the daemon (500)."""

    status = 500


class InvalidParameter(APIError):
    """The request is malformed or names an invalid value (400)."""

    status = 400


class Unauthorized(APIError):
    """Registry credentials are missing or rejected (401)."""

    status = 401


class Forbidden(APIError):
    """The operation is not allowed, e.g. removing a running container's image (403)."""

    status = 403


class NotFound(APIError):
    """No such container, image, network, volume, exec instance, ... (404)."""

    status = 404


class Conflict(APIError):
    """The object is in a state or has a name that forbids the operation (409)."""

    status = 409


# The name mirrors moby's errdefs.NotImplemented; it shadows the `NotImplemented` builtin
# only in modules that import it by this name, which the api package itself never needs.
class NotImplemented(APIError):
    """The daemon knows the endpoint but does not implement this feature (501)."""

    status = 501


class Unavailable(APIError):
    """The daemon cannot serve the request right now, e.g. it is shutting down (503)."""

    status = 503


class NotModified(APIError):
    """Nothing to do, e.g. starting a running container (304, sent without a body)."""

    status = 304
