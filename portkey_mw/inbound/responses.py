"""Inbound Responses API: ``POST /v1/responses`` for every provider.

A request whose route reaches only providers that serve the Responses API natively (OpenAI,
Azure OpenAI) is forwarded as it came, and the answer relayed as it comes: the provider
keeps the state (``previous_response_id`` goes to it untouched). Any other route is served
through chat completions: the Responses request (its ``input`` items, the conversation of
``previous_response_id`` from the gateway's own store, instructions, function tools, text
format, reasoning effort, sampling) becomes a chat request, and the chat answer, stream and
errors become the Responses object, its semantic events, and OpenAI errors. A translated
response is stored (``store``, default true) in the gateway's :class:`ResponseArchive`,
scoped to the gateway API key that made it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from portkey_mw.bounds import whole_number
from portkey_mw.context import Endpoint
from portkey_mw.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound
from portkey_mw.inbound import LOGGED_ENDPOINT
from portkey_mw.inbound.responses_translate import (
    ResponseStreamTranslator,
    chat_request,
    input_items,
    new_id,
    response_object,
)
from portkey_mw.request_shape import (
    Shape,
    array_of,
    boolean,
    by_type,
    check_fields,
    fields,
    integer,
    json_object,
    number,
    string,
    tagged,
)
from portkey_mw.response_store import ANONYMOUS, ResponseArchive

if TYPE_CHECKING:
    from portkey_mw.context import RequestContext
    from portkey_mw.inbound import InboundFormat
    from portkey_mw.store.records import ApiKey

#: the stored responses' routes start with it: ``/v1/responses/{id}[/input_items]``
RESPONSES_PREFIX = "/v1/responses/"
#: request fields only the Responses API itself can serve: refused when translating
NATIVE_ONLY = ("background", "conversation", "prompt")

# -- the request's shape --------------------------------------------------------------------------

_PART = tagged(
    {
        "input_text": fields(required={"text": string}),
        "output_text": fields(required={"text": string}),
        "input_image": fields(optional={"image_url": string, "detail": string}),
    },
    "a content part object",
)
_CONTENT = by_type({str: None, list: array_of(_PART)}, "a string or an array of content parts")
_ITEMS: dict[str, Shape] = {
    "message": fields(required={"role": string, "content": _CONTENT}, expected="a message item"),
    "function_call": fields(
        required={"call_id": string, "name": string, "arguments": string},
        expected="a function_call item",
    ),
    "function_call_output": fields(
        required={"call_id": string, "output": _CONTENT}, expected="a function_call_output item"
    ),
}


def _item(value: Any) -> None:
    """An input item; one without ``type`` is a message (the SDK's short form)."""
    if type(value) is dict and "type" not in value:
        _ITEMS["message"](value)
    else:
        tagged(_ITEMS, "an input item object")(value)


REQUEST_SHAPES: dict[str, Shape] = {
    "model": string,
    "input": by_type({str: None, list: array_of(_item)}, "a string or an array of input items"),
    "instructions": string,
    "previous_response_id": string,
    "store": boolean,
    "stream": boolean,
    "max_output_tokens": integer(minimum=1),
    "temperature": number,
    "top_p": number,
    "user": string,
    "metadata": json_object,
    "parallel_tool_calls": boolean,
    "tools": array_of(
        tagged(
            {
                "function": fields(
                    required={"name": string},
                    optional={"parameters": json_object, "strict": boolean, "description": string},
                )
            },
            "a tool object",
        )
    ),
    "tool_choice": by_type(
        {
            str: None,
            dict: tagged({"function": fields(required={"name": string})}, "a tool choice"),
        },
        "a string or a tool choice object",
    ),
    "text": fields(
        optional={
            "format": tagged(
                {"json_schema": fields(required={"name": string, "schema": json_object})},
                "a text format object",
            )
        }
    ),
    "reasoning": fields(optional={"effort": string}),
}


def scope_of(ctx: RequestContext) -> str:
    """Whose stored responses a request may read: its gateway API key's."""
    return _scope(ctx.api_key)


def _scope(key: ApiKey | None) -> str:
    return key.id if key is not None else ANONYMOUS


class ResponsesFormat:
    """The Responses API as an inbound format (one per gateway: it holds the archive)."""

    name = "responses"

    def __init__(self, archive: ResponseArchive, max_input_items: int = 10_000) -> None:
        self.archive = archive
        self.max_input_items = max_input_items

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check the request's shape; it stays as it is until the route is known."""
        check_fields(REQUEST_SHAPES, body)
        # (a native request may also continue a conversation or fill in a prompt template)
        if not any(body.get(k) for k in ("input", "previous_response_id", *NATIVE_ONLY)):
            raise InvalidRequest(
                "'input' is a required property", param="input", code="missing_param"
            )
        if isinstance(body.get("input"), list) and len(body["input"]) > self.max_input_items:
            raise InvalidRequest(
                f"at most {self.max_input_items} input items are accepted",
                param="input",
                code="invalid_value",
            )
        return body

    async def routed(self, ctx: RequestContext, native: bool) -> InboundFormat | None:
        """Native route: ``None`` (the request goes as it came). Otherwise the chat request
        replaces the body and the turn that translates this request's answer is returned."""
        if native:
            return None
        body = ctx.body or {}
        for name in NATIVE_ONLY:
            if body.get(name):
                raise InvalidRequest(
                    f"{name!r} needs a provider that serves the Responses API natively "
                    "(openai, azure-openai)",
                    param=name,
                    code="unsupported_parameter",
                )
        scope = scope_of(ctx)
        items: list[dict[str, Any]] = []
        previous_id = body.get("previous_response_id")
        if previous_id:
            previous = await self.archive.get(scope, previous_id)
            if previous is None:
                raise response_not_found(previous_id, "previous_response_id")
            items = previous.conversation()
        items += input_items(body)
        store = body.get("store") is not False
        size = len(orjson.dumps(items)) if store else 0
        if size > self.archive.max_entry_bytes:
            raise InvalidRequest(
                f"the conversation is larger than the {self.archive.max_entry_bytes} bytes "
                "a stored response may hold (responses.max_entry_bytes): send store: false "
                "with the whole input instead",
                param="input",
                code="conversation_too_large",
            )
        chat = chat_request(body, items)
        ctx.endpoint = Endpoint.CHAT_COMPLETIONS
        ctx.state[LOGGED_ENDPOINT] = Endpoint.RESPONSES.value
        ctx.state["inbound_format"] = self.name
        ctx.set_body(chat)
        return ResponsesTurn(self.archive, body, items, scope, store, size)

    def response(self, completion: dict[str, Any]) -> dict[str, Any]:
        return completion  # a native answer is already the client's

    def error(self, error: GatewayError) -> bytes:
        return error.to_bytes()

    def provider_error(self, status: int, body: Any) -> bytes:
        return _provider_error(status, body)

    def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        return chunks.__aiter__()

    def stream_error(self, error: GatewayError) -> bytes:
        return _error_event(error)


class ResponsesTurn:
    """One translated request: its answer becomes a Responses object, and is stored."""

    name = "responses"

    def __init__(
        self,
        archive: ResponseArchive,
        body: dict[str, Any],
        items: list[dict[str, Any]],
        scope: str,
        store: bool,
        items_size: int = 0,
    ) -> None:
        self.archive = archive
        self.body = body
        self.items = items
        #: bytes of ``items`` as JSON (measured once, when the request was checked)
        self.items_size = items_size
        self.scope = scope
        self.store = store
        self.id = new_id("resp")
        self.translator: ResponseStreamTranslator | None = None

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        return body  # already translated (see ResponsesFormat.routed)

    async def routed(self, ctx: RequestContext, native: bool) -> InboundFormat | None:
        return self

    def keep(self, response: dict[str, Any]) -> bool:
        """Store the finished response (when asked); whether it was."""
        if not self.store:
            return False
        kept = self.archive.record(self.scope, response, self.items, items_size=self.items_size)
        return kept is not None

    def response(self, completion: dict[str, Any]) -> dict[str, Any]:
        answer = response_object(completion, self.body, self.id, self.store)
        if self.store and not self.keep(answer):
            answer["store"] = False
        return answer

    def error(self, error: GatewayError) -> bytes:
        return error.to_bytes()

    def provider_error(self, status: int, body: Any) -> bytes:
        return _provider_error(status, body)

    def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        self.translator = ResponseStreamTranslator(self.body, self.id, self.store, self.keep)
        return self.translator.translate(chunks)

    def stream_error(self, error: GatewayError) -> bytes:
        if self.translator is None:
            return _error_event(error)
        return self.translator.failed(error)


def _provider_error(status: int, body: Any) -> bytes:
    """A provider's error, OpenAI-shaped already (the adapters see to it), or wrapped."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return orjson.dumps(body)
    return GatewayError(f"provider error {status}", status=status, code="provider_error").to_bytes()


def _error_event(error: GatewayError) -> bytes:
    payload = {"type": "error", "code": error.code, "message": error.message, "param": None}
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


def response_not_found(response_id: str, param: str | None = None) -> NotFound:
    """The 404 for a response this caller cannot see (unknown, expired, another key's)."""
    return NotFound(
        f"Response with id '{response_id[:100]}' not found.",
        param=param,
        code="response_not_found",
    )


def input_items_page(
    items: list[dict[str, Any]], *, limit: int, order: str, after: str | None
) -> dict[str, Any]:
    """``GET /v1/responses/{id}/input_items``: a list object (``data``, ``first_id``,
    ``last_id``, ``has_more``), newest first unless ``order`` is ``asc``."""
    ordered = items if order == "asc" else list(reversed(items))
    if after is not None:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(ordered) > limit,
    }


async def stored_response_route(
    archive: ResponseArchive, method: str, path: str, query: bytes, api_key: ApiKey | None
) -> tuple[int, bytes]:
    """Serve ``GET``/``DELETE /v1/responses/{id}`` and ``GET …/{id}/input_items`` for the
    caller identified by ``api_key``: the status and the JSON body.

    :raises NotFound: no such route, or no such response in the caller's scope.
    """
    rest = path[len(RESPONSES_PREFIX) :]
    response_id, _, tail = rest.partition("/")
    if not response_id or tail not in ("", "input_items"):
        raise NotFound(f"no route for {path[:200]}")
    allowed = "GET" if tail else "GET, DELETE"
    if method not in allowed.split(", "):
        raise MethodNotAllowed(f"{path[:200]} accepts {allowed}, not {method}")
    scope = _scope(api_key)
    if method == "DELETE":
        if not await archive.delete(scope, response_id):
            raise response_not_found(response_id)
        deleted = {"id": response_id, "object": "response.deleted", "deleted": True}
        return 200, orjson.dumps(deleted)
    record = await archive.get(scope, response_id)
    if record is None:
        raise response_not_found(response_id)
    if not tail:
        return 200, orjson.dumps(record.response)
    params = {k: v[-1] for k, v in parse_qs(query.decode("latin-1")).items()}
    limit = whole_number(params.get("limit", "20"))
    if limit is None or not 1 <= limit <= 100:
        raise InvalidRequest("limit: must be an integer from 1 to 100", param="limit")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order: must be 'asc' or 'desc'", param="order")
    page = input_items_page(record.input_items, limit=limit, order=order, after=params.get("after"))
    return 200, orjson.dumps(page)
