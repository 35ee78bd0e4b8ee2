"""Errors the gateway answers with, rendered in OpenAI's error shape.

Every failure a client can see is a :class:`GatewayError`: it carries the HTTP status and
the ``{"error": {"message", "type", "code"}}`` body, so no code path has to invent one.
"""

from __future__ import annotations

from typing import Any

import orjson

#: What code reading a JSON value of an unexpected shape raises: a key or an index that is not
#: there, or a value of another type indexed, iterated, converted or asked for a method.
#: Translations of a provider's answers catch these and answer 502 (the provider broke its
#: API) rather than check the type of every field they read.
SHAPE_ERRORS = (LookupError, TypeError, ValueError, AttributeError)


class GatewayError(Exception):
    """An error the client receives as an OpenAI-style body with an HTTP status.

    :param message: what was wrong, in words a client developer can act on.
    :param status: HTTP status code.
    :param type: OpenAI error type (``invalid_request_error``, ``api_error`` ...).
    :param code: a short machine-readable code.
    :param param: the request parameter at fault, when there is one.
    :param extra: more keys for the ``error`` object (e.g. ``attempts``).

    ``body_extra`` holds keys for the top level of the body, beside ``error`` (e.g. a
    guardrail denial's ``hook_results``); every response format keeps them.
    """

    status: int = 500
    type: str = "api_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        provider: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.provider = provider
        self.extra = extra or {}
        self.body_extra: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        """The response body: ``{"error": {...}}`` (plus ``provider`` as Portkey adds it)."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        body: dict[str, Any] = {"error": error}
        if self.provider:
            body["provider"] = self.provider
        body.update(self.body_extra)
        return body

    def to_bytes(self) -> bytes:
        """The response body, serialised."""
        return orjson.dumps(self.to_dict())


class InvalidRequest(GatewayError):
    """The request itself is wrong (400)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidConfig(InvalidRequest):
    """The routing config (header, id or file) does not validate (400)."""

    code = "invalid_config"


class NotFound(GatewayError):
    """No such route or named object (404)."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    """The route exists but not for this HTTP method (405)."""

    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    """The request body is over the configured limit (413)."""

    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class HeadersTooLarge(GatewayError):
    """The request headers, or one of them, are over the configured limit (431)."""

    status = 431
    type = "invalid_request_error"
    code = "request_header_fields_too_large"


class UnsupportedMediaType(GatewayError):
    """The request body is not JSON (415)."""

    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class AuthenticationError(GatewayError):
    """Credentials are missing or refused (401)."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    """The caller is known but may not do this: a scope it lacks, a routing choice its API
    key does not allow, a virtual key that is turned off (403)."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class DestinationNotAllowed(GatewayError):
    """The gateway refuses to contact a URL or address: the outbound policy does not allow
    it, or a client tried to steer a credential the server holds (403)."""

    status = 403
    type = "invalid_request_error"
    code = "destination_not_allowed"


class RequestDenied(GatewayError):
    """A request hook (guardrail, policy) refused the request.

    Portkey answers a denied request with status 446; hooks may choose another status.
    """

    status = 446
    type = "hooks_failed"
    code = "request_denied"


class UpstreamTimeout(GatewayError):
    """The provider did not answer within the request timeout (408, as Portkey)."""

    status = 408
    type = "timeout_error"
    code = "request_timeout"


class UpstreamConnectionError(GatewayError):
    """The provider could not be reached: refused, reset, DNS, TLS (502)."""

    status = 502
    type = "api_connection_error"
    code = "upstream_unreachable"


class UpstreamBadResponse(GatewayError):
    """The provider answered something that is not what its API promises (502)."""

    status = 502
    type = "upstream_error"
    code = "bad_upstream_response"


class PluginError(GatewayError):
    """A plugin raised while handling the request (500); the plugin is named."""

    status = 500
    type = "api_error"
    code = "plugin_error"


class PluginMissingDependency(GatewayError):
    """A plugin was used whose optional dependencies are not installed (500).

    The message names the extra to install, e.g. ``pip install "portkey-mw[redis]"``.
    """

    status = 500
    type = "api_error"
    code = "plugin_dependency_missing"

    def __init__(self, plugin: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"plugin {plugin!r} needs optional dependencies that are not installed{detail}: "
            f'pip install "portkey-mw[{extra}]"'
        )
