"""The prompt library's templates: Mustache prompts parsed once, rendered with bounds."""

from portkey_mw.prompts.errors import PartialCycle, RenderTooLarge, TemplateError
from portkey_mw.prompts.mustache import PartialRef
from portkey_mw.prompts.template import (
    MAX_TEMPLATE_BYTES,
    ROLES,
    PromptTemplate,
    Template,
    parse_template,
    partial_closure,
)

__all__ = [
    "MAX_TEMPLATE_BYTES",
    "ROLES",
    "PartialCycle",
    "PartialRef",
    "PromptTemplate",
    "RenderTooLarge",
    "Template",
    "TemplateError",
    "parse_template",
    "partial_closure",
]
