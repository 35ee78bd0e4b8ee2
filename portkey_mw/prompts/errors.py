"""What a prompt template can do wrong: at save time (parse) or per request (render)."""

from __future__ import annotations

from portkey_mw.errors import InvalidRequest


class TemplateError(InvalidRequest):
    """A prompt template (or a render of one) is not acceptable (400).

    Parse errors start with where the offending tag is: ``"line 3, column 7: ..."``
    (1-based, in characters); for a messages array the message index and field come first
    (``"messages[1].content[0].text: line 1, column 4: ..."``).

    :param param: the request field at fault; the prompt version's ``string`` unless told.
    """

    code = "invalid_template"

    def __init__(self, message: str, *, param: str | None = "string", code: str | None = None):
        super().__init__(message, param=param, code=code)


class PartialCycle(TemplateError):
    """A partial includes itself, directly or through others; the message names the chain."""

    code = "partial_cycle"


class RenderTooLarge(TemplateError):
    """Rendering would pass the output bound (characters, or steps for output-less loops)."""

    code = "rendered_prompt_too_large"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="variables")
