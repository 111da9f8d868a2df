"""The one error vocabulary of berth.

Every package raises these; only the API layer turns them into HTTP status codes
(and the CLI into exit codes). Messages are one line and name the object, the way
Docker's do: "No such container: web", "Conflict. The container name \"/web\" is
already in use by container \"3f2…\"".
"""


class BerthError(Exception):
    """Base of all errors that a user of berth can see."""

    status = 500


class InvalidParameter(BerthError):
    status = 400


class Unauthorized(BerthError):
    """Credentials missing or refused (a registry's 401, a failed login)."""

    status = 401


class Forbidden(BerthError):
    status = 403


class NotFound(BerthError):
    status = 404


class NotModified(BerthError):
    status = 304


class Conflict(BerthError):
    status = 409


class Unavailable(BerthError):
    status = 503


class SystemError_(BerthError):
    """Something on the host failed (a syscall, a mount, a missing tool)."""

    status = 500
