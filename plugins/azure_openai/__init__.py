"""The ``azure-openai`` provider: OpenAI's API as Azure serves it, per resource and deployment.

Target options (or ``x-portkey-azure-<option>`` headers, as Portkey's): ``resource_name``,
``deployment_id``, ``api_version`` (default ``2024-10-21``), and for Microsoft Entra ID
``azure_ad_token`` (sent as a bearer token instead of the ``api-key`` header). A
``custom_host`` replaces ``https://<resource_name>.openai.azure.com/openai``. The Responses
API goes to ``<base>/responses?api-version=`` (default ``2025-04-01-preview``), where the
body's ``model`` names the deployment. Files and batches belong to the resource
(``…/openai/files``, ``…/openai/batches``): they need no deployment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint
from portkey_mw.errors import AuthenticationError, InvalidRequest
from portkey_mw.files import operation, upstream_request
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.multipart import MULTIPART_ENDPOINTS, form_of
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers
from portkey_mw.transport import StreamedBody, UpstreamRequest

DEFAULT_API_VERSION = "2024-10-21"
#: the Responses API is served at <resource>/openai/responses (no deployment in the path: the
#: body's model names the deployment) from this preview version on
RESPONSES_API_VERSION = "2025-04-01-preview"
#: the first api-version that serves the realtime WebSocket (the chat default does not)
DEFAULT_REALTIME_API_VERSION = "2024-10-01-preview"
#: An Azure resource name is one DNS label: it becomes <name>.openai.azure.com.
RESOURCE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?")
PATHS = {
    Endpoint.CHAT_COMPLETIONS: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.IMAGES: "/images/generations",
    Endpoint.IMAGE_EDITS: "/images/edits",
    Endpoint.AUDIO_SPEECH: "/audio/speech",
    Endpoint.AUDIO_TRANSCRIPTIONS: "/audio/transcriptions",
    Endpoint.AUDIO_TRANSLATIONS: "/audio/translations",
}
#: files and batches live on the resource, not on a deployment (the authoring API)
RESOURCE_PATHS = {Endpoint.FILES: "/files", Endpoint.BATCHES: "/batches"}


class AzureOpenAIProvider(HTTPProvider):
    """OpenAI-format requests to an Azure OpenAI deployment; responses need no translation."""

    id = "azure-openai"
    endpoints = frozenset(
        {
            *PATHS,
            *RESOURCE_PATHS,
            Endpoint.MODELS,
            Endpoint.RESPONSES,
            Endpoint.PROXY,
            Endpoint.REALTIME,
        }
    )
    features = frozenset({"stream", "tools", "vision", "json"})
    destination_options = frozenset({"resource_name", "deployment_id"})
    secret_options = frozenset({"azure_ad_token"})

    def option_header(self, name: str) -> str:
        return _header(name)

    def proxy_base(self, call: ProviderCall) -> str | None:
        deployment = _option(call, "deployment_id")
        if deployment and self.holds_server_credentials(call.target):
            # A server-held key bound to a deployment passes through below it only: the
            # resource's other deployments are other destinations.
            return f"{self._resource_base(call)}/deployments/{quote(str(deployment), safe='')}"
        return self._resource_base(call)

    def _bound_deployment(self, call: ProviderCall) -> ProviderCall:
        """The Responses API takes its deployment from the body's ``model``: a server-held
        key bound to a deployment reaches that one, whatever model the client names (as a
        chat request's URL does)."""
        deployment = _option(call, "deployment_id")
        body = call.body or {}
        if not deployment or not self.holds_server_credentials(call.target):
            return call
        if body.get("model") == str(deployment):
            return call
        return dataclasses.replace(call, body={**body, "model": str(deployment)}, raw_body=None)

    def proxy_auth(self, call: ProviderCall) -> dict[str, str]:
        return self._auth(call)

    def _auth(self, call: ProviderCall) -> dict[str, str]:
        token = _option(call, "azure_ad_token")
        if token:
            return {"authorization": f"Bearer {str(token).removeprefix('Bearer ')}"}
        if call.target.api_key:
            return {"api-key": call.target.api_key}
        raise AuthenticationError(
            "no credentials for provider 'azure-openai': send 'Authorization: Bearer "
            "<api key>', set api_key on the target, or give azure_ad_token (Entra ID)",
            provider=self.id,
        )

    def _resource_base(self, call: ProviderCall) -> str:
        resource = str(_required(call, "resource_name"))
        if not RESOURCE_NAME.fullmatch(resource):
            raise InvalidRequest(
                f"azure-openai resource_name {resource[:80]!r} is not an Azure resource "
                "name (letters, digits and dashes)",
                param="resource_name",
                code="invalid_provider_option",
            )
        return f"https://{resource}.openai.azure.com/openai"

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        headers = self._auth_headers(call)
        base = self._base(call)
        default = (
            RESPONSES_API_VERSION if call.endpoint is Endpoint.RESPONSES else DEFAULT_API_VERSION
        )
        version = quote(str(_option(call, "api_version") or default), safe="")
        if call.endpoint in RESOURCE_PATHS:
            # {resource}.openai.azure.com/openai/files/{id}/content?api-version=…
            api_version = str(_option(call, "api_version") or default)
            url = operation(call.ctx).url(
                base + RESOURCE_PATHS[call.endpoint], {"api-version": api_version}
            )
            return upstream_request(call, url, headers)
        if call.endpoint is Endpoint.MODELS:
            url = f"{base}/models?api-version={version}"
            return UpstreamRequest("GET", url, headers=headers, timeout=call.timeout)
        if call.endpoint is Endpoint.RESPONSES:
            url = f"{base}/responses?api-version={version}"
            call = self._bound_deployment(call)
        else:
            deployment = quote(str(_required(call, "deployment_id")), safe="")
            url = f"{base}/deployments/{deployment}{PATHS[call.endpoint]}?api-version={version}"
        body: bytes | StreamedBody
        if call.endpoint in MULTIPART_ENDPOINTS:
            # the client's files, with the fields after the config's overrides
            body, headers["content-type"] = form_of(call.ctx).encode(call.body or {})
        else:
            headers["content-type"] = "application/json"
            body = call.body_bytes()
        return UpstreamRequest(
            "POST",
            url,
            headers=headers,
            body=body,
            timeout=call.timeout,
            stream=call.stream,
        )

    def realtime_request(self, call: ProviderCall) -> UpstreamRequest:
        """``GET <base>/realtime?api-version=…&deployment=…`` upgraded to a WebSocket; the
        deployment is ``deployment_id``, else -- with the client's own credentials only --
        the model the client asked for (Azure's SDK names the deployment as the model). A
        server-held key reaches only the deployment the operator named, as for chat."""
        headers = self._auth_headers(call)
        base = self._base(call)
        version = _option(call, "api_version") or DEFAULT_REALTIME_API_VERSION
        deployment = _option(call, "deployment_id")
        if not deployment and not self.holds_server_credentials(call.target):
            deployment = (call.body or {}).get("model")
        if not deployment:
            _required(call, "deployment_id")  # raises, naming the option
        query = urlencode({"api-version": str(version), "deployment": str(deployment)})
        return UpstreamRequest(
            "GET", f"{base}/realtime?{query}", headers=headers, timeout=call.timeout, stream=True
        )

    def _auth_headers(self, call: ProviderCall) -> dict[str, str]:
        return forwarded_headers(call) | self._auth(call)

    def _base(self, call: ProviderCall) -> str:
        return custom_host(call) or self._resource_base(call)


def _header(name: str) -> str:
    # Portkey's azure headers: x-portkey-azure-<name without a leading azure_>.
    return "x-portkey-azure-" + name.removeprefix("azure_").replace("_", "-")


def _option(call: ProviderCall, name: str) -> Any:
    return call.option(name, _header(name))


def _required(call: ProviderCall, name: str) -> Any:
    value = _option(call, name)
    if not value:
        header = _header(name)
        raise InvalidRequest(
            f"provider 'azure-openai' needs {name}: set it on the target or send {header}",
            param=name,
            code="missing_provider_option",
        )
    return value


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the azure-openai provider."""
    register(AzureOpenAIProvider())
