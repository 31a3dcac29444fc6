"""Pydantic request and response models of the REST API (they are its OpenAPI schema).

Limits live here so that the schema tells clients (and schema-driven fuzzers) what the server
accepts: ids are positive 63-bit integers, numbers are finite, lists and strings are bounded
(the bounds the Python API enforces come from :mod:`memkit.admission`; what JSON Schema cannot
say, metadata depth and size, is in the field's description).

Item ids are opaque: a namespaced key sees its namespace's ids (positive integers below
2**52, stable, unrelated to the order or number of writes in other namespaces); an admin key
sees the memory's own ids. See :mod:`memkit.server.ids`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memkit.admission import (
    MAX_BACKEND_NAME,
    MAX_BACKENDS,
    MAX_K,
    MAX_LABEL_CHARS,
    MAX_METADATA_CHARS,
    MAX_METADATA_DEPTH,
    MAX_QUERY_CHARS,
)
from memkit.types import Hit, MemoryItem, ReadResult, Scope, WriteReport

MAX_ID = 2**63 - 1
MAX_TEXT = 1_000_000
MAX_BATCH = 10_000
MAX_IDS = 10_000
MAX_METADATA_KEYS = 1_000
ID_DOC = ("an opaque item id: a namespaced key sees its namespace's own ids (below 2**52), an "
          "admin key the memory's")

_strict = ConfigDict(extra="forbid")
ItemIdValue = Annotated[int, Field(ge=1, le=MAX_ID, description=ID_DOC)]
Label = Annotated[str, Field(max_length=MAX_LABEL_CHARS)]
Metadata = Annotated[dict[str, Any], Field(
    max_length=MAX_METADATA_KEYS,
    description=f"a JSON object of your own fields: at most {MAX_METADATA_KEYS} keys, "
                f"{MAX_METADATA_DEPTH} levels deep and {MAX_METADATA_CHARS:,} characters as "
                "JSON; 64-bit integers; no lone surrogates")]
BackendName = Annotated[str, Field(max_length=MAX_BACKEND_NAME)]
BackendSpec = (Annotated[str, Field(max_length=MAX_BACKENDS * (MAX_BACKEND_NAME + 1))]
               | Annotated[list[BackendName], Field(max_length=MAX_BACKENDS)] | None)


class ScopeModel(BaseModel):
    """Who a memory belongs to. On a read, an unset field means "any"."""

    model_config = _strict
    namespace: str | None = Field(None, max_length=200, description="tenant; fixed by the key")
    user: str | None = Field(None, max_length=200)
    agent: str | None = Field(None, max_length=200)
    session: str | None = Field(None, max_length=200)

    @classmethod
    def of(cls, scope: Scope) -> ScopeModel:
        return cls(**scope.as_dict())


class WriteRequest(BaseModel):
    model_config = _strict
    text: str = Field(..., max_length=MAX_TEXT, description="the memory, in plain text")
    scope: ScopeModel | None = None
    source: Label | None = Field(None, description="where it came from")
    confidence: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    ttl: float | None = Field(None, gt=0, le=1e10, allow_inf_nan=False,
                              description="seconds until it expires")
    metadata: Metadata | None = None


class UpdateResponse(BaseModel):
    id: int = Field(..., description="the id of the new version (" + ID_DOC + ")")


class WriteResponse(BaseModel):
    id: int = Field(..., description="the item id (the existing one for a duplicate); "
                    + ID_DOC)
    created: bool = Field(..., description="false: the same text was already current in the "
                          "scope (status 200) and nothing was written; true: a new item (201)")


class BatchRecord(BaseModel):
    model_config = _strict
    text: str = Field(..., max_length=MAX_TEXT)
    scope: ScopeModel | None = None
    source: Label | None = None
    confidence: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    ttl: float | None = Field(None, gt=0, le=1e10, allow_inf_nan=False)
    metadata: Metadata | None = None
    created_at: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False)


class WriteManyRequest(BaseModel):
    model_config = _strict
    records: list[str | BatchRecord] = Field(..., max_length=MAX_BATCH)
    scope: ScopeModel | None = Field(None, description="default scope of the records")
    batch_size: int = Field(64, ge=1, le=1_000)


class Rejected(BaseModel):
    what: str
    reason: str


class WriteManyResponse(BaseModel):
    added: list[int]
    skipped_duplicates: int
    rejected: list[Rejected]

    @classmethod
    def of(cls, report: WriteReport) -> WriteManyResponse:
        return cls(added=list(report.added), skipped_duplicates=report.skipped_duplicates,
                   rejected=[Rejected(what=w, reason=r) for w, r in report.rejected])


class ReadRequest(BaseModel):
    model_config = _strict
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(5, ge=1, le=MAX_K)
    scope: ScopeModel | None = None
    backend: BackendSpec = Field(
        None, description=f"a backend name, several (comma-separated or a list: fused; at "
        f"most {MAX_BACKENDS}), or null for the memory's default")
    as_of: float | None = Field(None, ge=0, le=1e11, allow_inf_nan=False,
                                description="see the versions valid at this time (epoch s)")
    budget_tokens: int | None = Field(None, ge=1, le=10_000_000)
    rerank: str | None = Field(None, max_length=100)
    valid_at: float | str | None = Field(
        None, description="only what held in the world at this time (event time: epoch s or "
        "ISO 8601); default: what holds now")
    include_invalidated: bool = Field(False, description="also facts that no longer hold")
    fusion: Literal["rrf", "minmax"] | None = Field(
        None, description="how several backends' rankings are fused (default rrf)")
    weights: dict[str, float] | None = Field(
        None, description="per-backend fusion weights, e.g. {\"dense\": 1, \"bm25\": 0.5}")


class ItemModel(BaseModel):
    id: int
    text: str
    scope: ScopeModel
    source: str | None
    created_at: float
    confidence: float
    expires_at: float | None
    metadata: dict[str, Any]
    content_hash: str
    version: int
    root_id: int | None
    supersedes: int | None
    valid_from: float
    valid_until: float | None
    event_from: float | None = Field(None, description="when it starts to hold in the world")
    event_until: float | None = Field(None, description="when it stopped holding (set when "
                                      "invalidated, e.g. contradicted by a newer fact)")
    invalidated: bool = False

    @classmethod
    def of(cls, item: MemoryItem) -> ItemModel:
        data = dict(item.__dict__, invalidated=item.invalidated)
        data["scope"] = ScopeModel.of(item.scope)
        return cls(**data)


class HitModel(BaseModel):
    item: ItemModel
    score: float
    backend: str
    rank: int
    evidence: dict[str, Any]

    @classmethod
    def of(cls, hit: Hit) -> HitModel:
        return cls(item=ItemModel.of(hit.item), score=_finite(hit.score), backend=hit.backend,
                   rank=hit.rank, evidence=jsonable(hit.evidence))


class CostModel(BaseModel):
    ms: float = 0.0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embed_calls: int = 0


class ReadResponse(BaseModel):
    query: str
    hits: list[HitModel]
    cost: CostModel
    timings: dict[str, float]

    @classmethod
    def of(cls, result: ReadResult) -> ReadResponse:
        return cls(query=result.query, hits=[HitModel.of(h) for h in result.hits],
                   cost=CostModel(**result.cost.__dict__),
                   timings={k: _finite(v) for k, v in result.timings.items()})


class AnswerRequest(BaseModel):
    model_config = _strict
    question: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(5, ge=1, le=MAX_K)
    scope: ScopeModel | None = None
    backend: BackendSpec = None


class AnswerResponse(BaseModel):
    answer: str
    cited_ids: list[int]
    detail: dict[str, Any] = Field(default_factory=dict,
                                   description="everything the reader returned")


class UpdateRequest(BaseModel):
    model_config = _strict
    text: str = Field(..., max_length=MAX_TEXT)
    reason: Label | None = None
    metadata: Metadata | None = None
    confidence: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    source: Label | None = None


class DeleteRequest(BaseModel):
    model_config = _strict
    ids: list[ItemIdValue] = Field(..., max_length=MAX_IDS)
    reason: Label | None = None


class IdsResponse(BaseModel):
    ids: list[int]


class ForgetRequest(BaseModel):
    model_config = _strict
    policy: str = Field("ttl", description="'ttl' (expired items) or 'superseded' (old "
                        "versions; admin keys only)", max_length=50)


class ErrorBody(BaseModel):
    type: str = Field(..., description="the memkit error class, e.g. NotFound")
    code: str
    message: str
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthResponse(BaseModel):
    status: str
    version: str
    uptime_s: float
    auth: str
    items: int | None = None
    worker: int | None = None  # the answering process (``memkit serve --workers N``)
    store: str | None = None  # "sqlite" or "postgres"


class WhoAmI(BaseModel):
    key_id: str | None
    name: str | None
    namespace: str | None
    user: str | None
    agent: str | None
    admin: bool


def _finite(x: Any) -> float:
    x = float(x)
    return x if x == x and abs(x) != float("inf") else 0.0


def jsonable(value: Any, depth: int = 0) -> Any:
    """Backend evidence as plain JSON (numpy scalars and arrays become numbers and lists)."""
    if depth > 20:
        return str(value)
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v, depth + 1) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return jsonable(tolist(), depth + 1)
    return str(value)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc}
    for code, desc in [(400, "invalid input"), (401, "missing or invalid API key"),
                       (403, "outside this key's scope"), (404, "no such item (in your scope)"),
                       (413, "request body too large"), (422, "malformed request"),
                       (501, "not available on this server"), (504, "timed out")]
}
