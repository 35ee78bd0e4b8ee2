"""The shape of a request body: the fields the gateway and its providers read, by type.

A body is checked once, right after it is parsed, so that no translation further down has
to guess: a field of the wrong type is a 400 naming the field (``param`` is its dotted
path, e.g. ``messages.2.content``), never a 500 from deep inside a provider adapter.

Only what something in the gateway reads is checked, and only for what that reading needs
(types, required keys, a few bounds); every other field passes untouched, since providers
take parameters of their own. The checks are plain type tests run on every request -- no
pydantic, no JSON Schema -- and cost microseconds.

A *shape* is a function that returns when a value fits and raises :class:`ShapeError` when
it does not; shapes compose (:func:`array_of`, :func:`fields`, :func:`by_type`,
:func:`tagged`), and inbound formats describe their own bodies with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from portkey_mw.context import Endpoint
from portkey_mw.errors import InvalidRequest

#: tests one value: returns when it fits, raises :class:`ShapeError` when it does not
Shape = Callable[[Any], None]

#: body parameter each endpoint cannot do without
REQUIRED_PARAM = {
    Endpoint.CHAT_COMPLETIONS: "messages",
    Endpoint.COMPLETIONS: "prompt",
    Endpoint.EMBEDDINGS: "input",
    Endpoint.IMAGES: "prompt",
    Endpoint.MODERATIONS: "input",
    Endpoint.COUNT_TOKENS: "messages",
    Endpoint.RERANK: "documents",
    Endpoint.AUDIO_SPEECH: "input",
    Endpoint.BATCHES: "input_file_id",
}

_KINDS: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}
_ABSENT: Any = object()


class ShapeError(Exception):
    """A value that does not fit where it was found.

    It is raised where the misfit is found, knowing nothing of the path; each enclosing shape
    adds its key on the way out (:meth:`at`). A body that fits never pays for a path.

    :param expected: what would have fitted, in words (``"a string"``).
    :param value: what was there instead.
    :param code: ``invalid_type``, ``invalid_value`` (right type, out of bounds) or
        ``missing_param``.
    """

    def __init__(self, expected: str, value: Any, code: str = "invalid_type") -> None:
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.code = code
        self.path: list[str | int] = []  # innermost key first

    def at(self, key: str | int) -> ShapeError:
        """Note that the misfit is inside ``key`` of the enclosing value."""
        self.path.append(key)
        return self

    def to_invalid_request(self) -> InvalidRequest:
        """The 400 for this misfit, ``param`` naming where it is (``messages.2.content``)."""
        param = ".".join(str(key) for key in reversed(self.path))
        if self.code == "missing_param":
            message = f"Missing required parameter: '{param}'."
        elif self.code == "invalid_value":
            message = (
                f"Invalid value for '{param}': expected {self.expected}, "
                f"but got {_excerpt(self.value)}."
            )
        else:
            message = (
                f"Invalid type for '{param}': expected {self.expected}, "
                f"but got {kind_of(self.value)} instead."
            )
        return InvalidRequest(message, param=param, code=self.code)


def kind_of(value: Any) -> str:
    """The JSON kind of ``value`` in words (``"an integer"``, ``"null"``...)."""
    return _KINDS.get(type(value), type(value).__name__)


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- shapes ---------------------------------------------------------------------------------------
# orjson builds exact dicts, lists, strs, ints, floats and bools, so ``type(x) is ...`` is
# both exact (a bool is never taken for an int) and the fastest test there is.


def string(value: Any) -> None:
    """A string."""
    if type(value) is not str:
        raise ShapeError("a string", value)


def boolean(value: Any) -> None:
    """``true`` or ``false``."""
    if type(value) is not bool:
        raise ShapeError("a boolean", value)


def number(value: Any) -> None:
    """A number, integer or not (a boolean is not a number)."""
    kind = type(value)
    if kind is not float and kind is not int:
        raise ShapeError("a number", value)


def json_object(value: Any) -> None:
    """A JSON object, whatever its keys."""
    if type(value) is not dict:
        raise ShapeError("an object", value)


def integer(minimum: int | None = None, maximum: int | None = None) -> Shape:
    """A whole number (``2`` or ``2.0``, as JSON Schema counts them) within the bounds."""
    if minimum is not None and maximum is not None:
        bounds = f"an integer from {minimum} to {maximum}"
    elif minimum is not None:
        bounds = f"an integer of at least {minimum}"
    else:
        bounds = "an integer"

    def shape(value: Any) -> None:
        kind = type(value)
        if kind is not int and not (kind is float and value.is_integer()):
            raise ShapeError("an integer", value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ShapeError(bounds, value, "invalid_value")

    return shape


def array_of(item: Shape, expected: str = "an array", *, non_empty: bool = False) -> Shape:
    """An array whose every element fits ``item`` (and has one at least, if ``non_empty``)."""

    def shape(value: Any) -> None:
        if type(value) is not list:
            raise ShapeError(expected, value)
        if non_empty and not value:
            raise ShapeError("a non-empty array", value, "invalid_value")
        _each(value, item)

    return shape


def fields(
    required: Mapping[str, Shape] | None = None,
    optional: Mapping[str, Shape] | None = None,
    expected: str = "an object",
) -> Shape:
    """An object with the ``required`` keys (not null), whose ``optional`` keys, when present
    and not null, fit too; keys not named pass."""
    needed = tuple((required or {}).items())
    allowed = dict(optional or {})

    def shape(value: Any) -> None:
        if type(value) is not dict:
            raise ShapeError(expected, value)
        for name, field in needed:
            found = value.get(name, _ABSENT)
            if found is _ABSENT:
                raise ShapeError(expected, None, "missing_param").at(name)
            try:
                field(found)
            except ShapeError as error:
                error.at(name)
                raise
        if allowed:
            _fit_fields(allowed, value, None)

    return shape


def by_type(alternatives: Mapping[type, Shape | None], expected: str) -> Shape:
    """A value of one of the JSON types listed; a type mapped to a shape must fit it too."""

    def shape(value: Any) -> None:
        alternative = alternatives.get(type(value), _ABSENT)
        if alternative is _ABSENT:
            raise ShapeError(expected, value)
        if alternative is not None:
            alternative(value)

    return shape


def tagged(variants: Mapping[str, Shape], expected: str, tag: str = "type") -> Shape:
    """An object whose ``tag`` key is a string; one of a known kind must fit that kind's
    shape (objects of other kinds pass: providers keep adding kinds)."""

    def shape(value: Any) -> None:
        if type(value) is not dict:
            raise ShapeError(expected, value)
        kind = value.get(tag, _ABSENT)
        if kind is _ABSENT:
            raise ShapeError("a string", None, "missing_param").at(tag)
        if type(kind) is not str:
            raise ShapeError("a string", kind).at(tag)
        variant = variants.get(kind)
        if variant is not None:
            variant(value)

    return shape


def check_fields(
    shapes: Mapping[str, Shape], body: dict[str, Any], required: str | None = None
) -> None:
    """Check each field of ``body`` that ``shapes`` names (a null is an absent field, except
    for ``required``); raise :class:`~portkey_mw.errors.InvalidRequest` for the first misfit,
    ``param`` naming it."""
    try:
        _fit_fields(shapes, body, required)
    except ShapeError as error:
        raise error.to_invalid_request() from None


def _fit_fields(shapes: Mapping[str, Shape], value: dict[str, Any], required: str | None) -> None:
    for name, found in value.items():
        shape = shapes.get(name)
        if shape is None or (found is None and name != required):
            continue
        try:
            shape(found)
        except ShapeError as error:
            error.at(name)
            raise


# -- OpenAI request bodies ----------------------------------------------------------------------

_IMAGE_URL = by_type(
    {str: None, dict: fields(required={"url": string}, optional={"detail": string})},
    "a URL string or an object with a 'url' string",
)
_CONTENT_PART = tagged(
    {
        "text": fields(required={"text": string}),
        "image_url": fields(required={"image_url": _IMAGE_URL}),
    },
    "a content part object",
)
_CONTENT = by_type(
    {str: None, list: array_of(_CONTENT_PART)},
    "a string, an array of content parts, or null",
)
_TOOL_CALL = fields(
    required={
        "function": fields(
            required={"name": string},
            # OpenAI sends a JSON string; an object is taken as the arguments themselves.
            optional={"arguments": by_type({str: None, dict: None}, "a string of JSON")},
        )
    },
    optional={"id": string, "type": string},
    expected="a tool call object",
)
_MESSAGE_FIELDS: dict[str, Shape] = {
    "content": _CONTENT,
    "name": string,
    "tool_calls": array_of(_TOOL_CALL),
    "tool_call_id": string,
}


def _message(value: Any) -> None:
    """A chat message: a string ``role``, and content, tool calls... of the right shapes."""
    if type(value) is not dict:
        raise ShapeError("a message object", value)
    role = value.get("role", _ABSENT)
    if type(role) is not str:
        if role is _ABSENT:
            raise ShapeError("a string", None, "missing_param").at("role")
        raise ShapeError("a string", role).at("role")
    # Most messages are a role and a text: they take the short way (long chats add up).
    if len(value) == 2 and type(value.get("content")) is str:
        return
    _fit_fields(_MESSAGE_FIELDS, value, None)


_FUNCTION = fields(
    required={"name": string},
    optional={"description": string, "parameters": json_object, "strict": boolean},
)


def _tool(value: Any) -> None:
    """A tool: one of kind ``function`` (the default) needs a ``function`` with a name;
    other kinds (a provider's built-in tools) only need their ``type``."""
    if type(value) is not dict:
        raise ShapeError("a tool object", value)
    kind = value.get("type")
    if kind is not None and type(kind) is not str:
        raise ShapeError("a string", kind).at("type")
    function = value.get("function")
    if function is None:
        if kind == "function":
            raise ShapeError("a tool object", None, "missing_param").at("function")
        return
    try:
        _FUNCTION(function)
    except ShapeError as error:
        error.at("function")
        raise


_TOOL_CHOICE = by_type(
    {
        str: None,
        dict: fields(
            optional={"type": string, "function": fields(required={"name": string})},
        ),
    },
    "a string ('none', 'auto', 'required') or an object naming a function",
)
_RESPONSE_FORMAT = fields(
    required={"type": string},
    optional={
        "json_schema": fields(optional={"name": string, "schema": json_object, "strict": boolean})
    },
    expected='an object such as {"type": "json_object"}',
)
_STOP = by_type({str: None, list: array_of(string)}, "a string or an array of strings")
_TOKEN = integer(minimum=0)
_TOKENS = array_of(_TOKEN, non_empty=True)
_TEXT_INPUT = "a string, an array of strings, or an array of token ids (or of arrays of them)"


def _texts_or_tokens(value: Any) -> None:
    """Text to embed or complete: a string, strings, token ids, or arrays of token ids."""
    if type(value) is str:
        return
    if type(value) is not list:
        raise ShapeError(_TEXT_INPUT, value)
    if not value:
        raise ShapeError("a non-empty array", value, "invalid_value")
    # The first element says which of the array forms this is; every element must agree.
    first = type(value[0])
    item = (
        string if first is str else _TOKEN if first is int else _TOKENS if first is list else None
    )
    if item is None:
        raise ShapeError("a string, a token id or an array of token ids", value[0]).at(0)
    _each(value, item)


_MODERATION_INPUT = by_type(
    {
        str: None,
        list: array_of(
            by_type({str: None, dict: _CONTENT_PART}, "a string or a content part object"),
            non_empty=True,
        ),
    },
    "a string, an array of strings, or an array of content parts",
)

#: fields of every endpoint's body
_COMMON: dict[str, Shape] = {
    "model": string,
    "user": string,
    "metadata": json_object,
    "stream": boolean,
    "stream_options": fields(optional={"include_usage": boolean}),
}
#: fields of the endpoints that generate text
_GENERATION: dict[str, Shape] = {
    **_COMMON,
    "temperature": number,
    "top_p": number,
    "presence_penalty": number,
    "frequency_penalty": number,
    "max_tokens": integer(),
    "max_completion_tokens": integer(),
    "n": integer(minimum=1),
    "seed": integer(),
    "stop": _STOP,
    "logit_bias": json_object,
}
_CHAT: dict[str, Shape] = {
    **_GENERATION,
    "messages": array_of(_message, "an array of messages", non_empty=True),
    "tools": array_of(_tool),
    "tool_choice": _TOOL_CHOICE,
    "parallel_tool_calls": boolean,
    "response_format": _RESPONSE_FORMAT,
    "logprobs": boolean,
    "top_logprobs": integer(minimum=0),
}
#: the fields checked, per endpoint
BODY_SHAPES: dict[Endpoint, dict[str, Shape]] = {
    Endpoint.CHAT_COMPLETIONS: _CHAT,
    Endpoint.COUNT_TOKENS: _CHAT,
    Endpoint.COMPLETIONS: {
        **_GENERATION,
        "prompt": _texts_or_tokens,
        "logprobs": integer(minimum=0),  # a count here, unlike chat's boolean
    },
    Endpoint.EMBEDDINGS: {
        **_COMMON,
        "input": _texts_or_tokens,
        "dimensions": integer(minimum=1),
        "encoding_format": string,
        "input_type": string,
    },
    Endpoint.IMAGES: {
        **_COMMON,
        "prompt": string,
        "n": integer(minimum=1, maximum=10),
        "size": string,
        "quality": string,
        "style": string,
        "response_format": string,  # "url" or "b64_json" here, unlike chat's object
    },
    Endpoint.MODERATIONS: {**_COMMON, "input": _MODERATION_INPUT},
    Endpoint.MODELS: {},
    Endpoint.RERANK: {
        **_COMMON,
        "query": string,
        "documents": array_of(
            by_type(
                {str: None, dict: fields({"text": string})}, "a string or an object with 'text'"
            ),
            non_empty=True,
        ),
        "top_n": integer(minimum=1),
        "return_documents": boolean,
        "max_tokens_per_doc": integer(minimum=1),
    },
    Endpoint.AUDIO_SPEECH: {
        **_COMMON,
        "input": string,
        "speed": number,
        "response_format": string,
        "stream_format": string,
        "instructions": string,
    },
    # multipart forms: their fields are text (portkey_mw.multipart checks what it reads)
    Endpoint.AUDIO_TRANSCRIPTIONS: {"stream": boolean},
    Endpoint.AUDIO_TRANSLATIONS: {},
    Endpoint.IMAGE_EDITS: {},
    # a batch's creation (the other files and batches calls have no JSON body)
    Endpoint.BATCHES: {
        "input_file_id": string,
        "endpoint": string,
        "completion_window": string,
        "metadata": json_object,
    },
    Endpoint.FILES: {},
}


def require_param(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Raise a 400 when ``body`` lacks the one parameter ``endpoint`` cannot do without
    (checked on the client's body in any inbound format: the names are the same)."""
    required = REQUIRED_PARAM.get(endpoint)
    if required and required not in body:
        raise InvalidRequest(
            f"'{required}' is a required property", param=required, code="missing_param"
        )


def check_body(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Raise :class:`InvalidRequest` (400, ``param`` naming the field) when an OpenAI-format
    ``body`` lacks what ``endpoint`` needs or a field it reads has the wrong shape."""
    require_param(endpoint, body)
    check_fields(BODY_SHAPES[endpoint], body, REQUIRED_PARAM.get(endpoint))


def _each(values: list[Any], item: Any) -> None:
    """Check every element of ``values`` with ``item``, naming the index of a misfit."""
    for index, element in enumerate(values):
        try:
            item(element)
        except ShapeError as error:
            error.at(index)
            raise
