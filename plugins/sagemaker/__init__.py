"""The ``sagemaker`` provider plugin: an Amazon SageMaker real-time endpoint behind
OpenAI's chat completions.

SageMaker's ``InvokeEndpoint`` (``POST /endpoints/<name>/invocations`` on
``runtime.sagemaker.<region>.amazonaws.com``) carries whatever the model's container
speaks; the LLM containers (LMI, TGI, vLLM) take and answer OpenAI's chat format, so the
body goes as the client sent it and the answer comes back as it is. The request is signed
with SigV4 by botocore (``pip install "portkey-mw[bedrock]"``). The endpoint name and the
``x-amzn-sagemaker-*`` routing options are destination options: with credentials the
server holds, a client cannot move them. Response streaming
(``InvokeEndpointWithResponseStream``) is not translated: ``stream: true`` is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint
from portkey_mw.errors import AuthenticationError, InvalidRequest, PluginMissingDependency
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers
from portkey_mw.transport import UpstreamRequest

_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region")
#: an AWS region name; it becomes part of the host name, so nothing else may pass
REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
#: SageMaker's own rule for endpoint names; the name becomes a path segment
ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}")
#: routing options sent as SageMaker's ``x-amzn-sagemaker-*`` headers
ROUTING = {
    "amzn_sagemaker_target_model": "x-amzn-sagemaker-target-model",
    "amzn_sagemaker_target_variant": "x-amzn-sagemaker-target-variant",
    "amzn_sagemaker_inference_component": "x-amzn-sagemaker-inference-component",
    "amzn_sagemaker_custom_attributes": "x-amzn-sagemaker-custom-attributes",
}


class SageMakerProvider(HTTPProvider):
    """Chat with a model served on a SageMaker real-time endpoint."""

    id = "sagemaker"
    endpoints = frozenset({Endpoint.CHAT_COMPLETIONS})
    features = frozenset({"tools", "json"})
    destination_options = frozenset({"aws_region", "sagemaker_endpoint_name", *ROUTING})
    secret_options = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token"})

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        credentials = {name: call.option(name) for name in _CREDENTIALS}
        missing = [n for n in _CREDENTIALS if n != "aws_session_token" and not credentials[n]]
        if missing:
            raise AuthenticationError(
                f"provider 'sagemaker' is missing {', '.join(missing)}: set them on the target "
                "or send " + ", ".join("x-portkey-" + n.replace("_", "-") for n in missing),
                provider=self.id,
            )
        region = str(credentials["aws_region"])
        if not REGION.fullmatch(region):
            raise InvalidRequest(
                f"sagemaker aws_region {region[:40]!r} is not an AWS region (e.g. us-east-1)",
                param="aws_region",
                code="invalid_provider_option",
            )
        name = str(call.option("sagemaker_endpoint_name") or "")
        if not ENDPOINT_NAME.fullmatch(name):
            raise InvalidRequest(
                "provider 'sagemaker' needs sagemaker_endpoint_name (a SageMaker endpoint "
                "name) on the target or in x-portkey-sagemaker-endpoint-name",
                param="sagemaker_endpoint_name",
                code="invalid_provider_option",
            )
        if call.stream:
            raise InvalidRequest(
                "provider 'sagemaker' does not stream through this gateway: send stream=false",
                param="stream",
                code="unsupported_parameter",
            )
        base = custom_host(call) or f"https://runtime.sagemaker.{region}.amazonaws.com"
        url = f"{base}/endpoints/{name}/invocations"
        data = call.body_bytes()
        routing = {
            header: str(call.option(option))
            for option, header in ROUTING.items()
            if call.option(option)
        }
        headers = {**forwarded_headers(call), **_signed(url, data, routing, credentials)}
        return UpstreamRequest("POST", url, headers=headers, body=data, timeout=call.timeout)


def _signed(
    url: str, body: bytes, routing: dict[str, str], credentials: dict[str, Any]
) -> dict[str, str]:
    """SigV4 headers (the routing headers signed too) for an InvokeEndpoint request."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError as exc:
        raise PluginMissingDependency("sagemaker", "bedrock", exc) from exc
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"content-type": "application/json", "accept": "application/json", **routing},
    )
    keys = Credentials(
        credentials["aws_access_key_id"],
        credentials["aws_secret_access_key"],
        credentials["aws_session_token"],
    )
    SigV4Auth(keys, "sagemaker", str(credentials["aws_region"])).add_auth(request)
    return {name.lower(): str(value) for name, value in request.headers.items()}


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the sagemaker provider."""
    register(SageMakerProvider())
