"""Rerank (``POST /v1/rerank``) in Cohere's shape, and the wire formats of the providers
that serve it.

The client sends Cohere's request -- ``model``, ``query``, ``documents`` (strings, or
objects with a ``text``), ``top_n``, ``return_documents`` -- and gets Cohere's answer back:
``results`` of ``index`` and ``relevance_score``, best first, each with its ``document``
when asked. Cohere's v2 API, Voyage's and Jina's differ in small ways (``top_k`` for
``top_n``, ``data`` for ``results``, documents returned or not), so each is a
:class:`RerankDialect`. The documents a client gets back are the ones it sent, picked by
the index the provider answered: an upstream cannot put other text in them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from portkey_mw.errors import InvalidRequest, UpstreamBadResponse

#: Cohere's own ceiling on documents per request; more is refused before any call
MAX_DOCUMENTS = 10_000


@dataclass(frozen=True, slots=True)
class RerankRequest:
    """A checked rerank request, in the gateway's (Cohere's) terms."""

    model: str | None
    query: str
    texts: list[str]
    top_n: int | None
    return_documents: bool
    max_tokens_per_doc: int | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> RerankRequest:
        """Read a request body whose field types :mod:`portkey_mw.request_shape` checked.

        :raises InvalidRequest: no query, or more documents than a provider takes.
        """
        query = body.get("query")
        if not isinstance(query, str) or not query:
            raise InvalidRequest("'query' is a required property", param="query")
        documents = body.get("documents") or []
        if len(documents) > MAX_DOCUMENTS:
            raise InvalidRequest(
                f"at most {MAX_DOCUMENTS} documents may be reranked at once",
                param="documents",
                code="invalid_value",
            )
        texts = [d if isinstance(d, str) else str(d["text"]) for d in documents]
        top_n = body.get("top_n")
        max_tokens = body.get("max_tokens_per_doc")
        return cls(
            model=body.get("model"),
            query=query,
            texts=texts,
            top_n=int(top_n) if top_n is not None else None,
            return_documents=body.get("return_documents") is True,
            max_tokens_per_doc=int(max_tokens) if max_tokens is not None else None,
        )


@dataclass(frozen=True, slots=True)
class RerankDialect:
    """One provider's rerank wire format.

    :param provider: the provider id (named in errors about its answers).
    :param path: the path below the provider's base URL.
    :param top_key: what the provider calls ``top_n``.
    :param results_key: where its answer lists the results.
    """

    provider: str
    path: str
    top_key: str = "top_n"
    results_key: str = "results"

    def request(self, rerank: RerankRequest) -> dict[str, Any]:
        """The provider's request body. Documents go as strings (every provider takes
        them); the gateway adds the documents to the answer itself."""
        payload: dict[str, Any] = {"query": rerank.query, "documents": rerank.texts}
        if rerank.model is not None:
            payload["model"] = rerank.model
        if rerank.top_n is not None:
            payload[self.top_key] = rerank.top_n
        if rerank.max_tokens_per_doc is not None and self.provider == "cohere":
            payload["max_tokens_per_doc"] = rerank.max_tokens_per_doc
        return payload

    def response(self, rerank: RerankRequest, answer: Any) -> dict[str, Any]:
        """Cohere's answer from the provider's parsed one.

        :raises UpstreamBadResponse: results missing, or naming a document not sent.
        """
        if not isinstance(answer, dict) or not isinstance(answer.get(self.results_key), list):
            raise UpstreamBadResponse(
                f"{self.provider} answered a rerank without '{self.results_key}'",
                provider=self.provider,
            )
        results = [self._result(rerank, item) for item in answer[self.results_key]]
        results.sort(key=lambda r: -r["relevance_score"])
        reply: dict[str, Any] = {
            "id": str(answer.get("id") or uuid.uuid4()),
            "results": results,
            "meta": answer["meta"] if isinstance(answer.get("meta"), dict) else {},
        }
        if rerank.model is not None:
            reply["model"] = rerank.model
        tokens = _total_tokens(answer)
        if tokens is not None:
            reply["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return reply

    def _result(self, rerank: RerankRequest, item: Any) -> dict[str, Any]:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < len(rerank.texts)
            or not isinstance(score, (int, float))
            or isinstance(score, bool)
        ):
            raise UpstreamBadResponse(
                f"{self.provider} answered a rerank result that is not an index of a "
                "document sent with a relevance score",
                provider=self.provider,
            )
        result: dict[str, Any] = {"index": index, "relevance_score": float(score)}
        if rerank.return_documents:
            result["document"] = {"text": rerank.texts[index]}
        return result


def _total_tokens(answer: dict[str, Any]) -> int | None:
    usage = answer.get("usage")
    if isinstance(usage, dict) and type(usage.get("total_tokens")) is int:
        return int(usage["total_tokens"])
    return None


#: Cohere's v2 API (``https://api.cohere.com/v2/rerank``)
COHERE = RerankDialect("cohere", "/v2/rerank")
#: Voyage AI (``https://api.voyageai.com/v1/rerank``): ``top_k``, results under ``data``
VOYAGE = RerankDialect("voyage", "/rerank", top_key="top_k", results_key="data")
#: Jina AI (``https://api.jina.ai/v1/rerank``): Cohere's shape
JINA = RerankDialect("jina", "/rerank")
#: the dialects by name (``rerank`` in ``plugins/openai_compat/providers.toml``)
DIALECTS = {dialect.provider: dialect for dialect in (COHERE, VOYAGE, JINA)}
