"""What engine operations raise; the API layer maps each to its HTTP status."""


class EngineError(Exception):
    """Base: the message is what the user sees (Docker's wording where Docker has one)."""


class NotFound(EngineError):
    pass


class Conflict(EngineError):
    pass


class InvalidParameter(EngineError):
    pass


class NotModified(EngineError):
    pass


class Forbidden(EngineError):
    pass
