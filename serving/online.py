"""Reading a feature service's stored features straight from Feast's Redis online store.

One pipelined round trip per request (one HMGET per stored view and payment), with keys,
hash fields and values encoded exactly as Feast writes them (Feast's own helpers), and
nothing resolved per request: the registry is read once at start. The parity tests
compare what this returns with `get_historical_features`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from feast import FeatureService, FeatureStore
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.value_type import ValueType

from data.settings import Settings


@dataclass(frozen=True)
class StoredView:
    """What reading one stored feature view needs, precomputed."""

    name: str
    join_key: str
    value_type: ValueType
    features: list[str]
    fields: list[bytes]  # Feast's hash field per feature


class OnlineFeatureReader:
    """The stored features of a service for many payments, in one Redis round trip."""

    def __init__(self, settings: Settings, store: FeatureStore, service: FeatureService) -> None:
        config = store.config
        self._suffix = config.project.encode("utf-8")
        self._key_version = config.entity_key_serialization_version
        views = {view.name: view for view in store.list_feature_views()}
        entities = {entity.name: entity for entity in store.list_entities()}
        self.views: list[StoredView] = []
        for projection in service.feature_view_projections:
            if projection.name not in views:
                continue  # on-demand views are computed, not read
            view = views[projection.name]
            entity = entities[view.entities[0]]
            names = [feature.name for feature in projection.features]
            self.views.append(StoredView(name=view.name, join_key=entity.join_key, value_type=entity.value_type,
                                         features=names, fields=[_mmh3(f"{view.name}:{n}") for n in names]))
        self.redis = aioredis.Redis.from_url(settings.redis_url)

    @property
    def feature_names(self) -> list[str]:
        return [name for view in self.views for name in view.features]

    def redis_key(self, view: StoredView, entity_value: object) -> bytes:
        return _redis_key(view.join_key, view.value_type == ValueType.INT64, entity_value,
                          self._key_version, self._suffix)

    async def read(self, entities: Sequence[dict[str, object]]) -> dict[str, list[object]]:
        """Per stored feature, its value for each entity row (None when the store has none)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for row in entities:
                for view in self.views:
                    pipe.hmget(self.redis_key(view, row[view.join_key]), view.fields)
            replies = await pipe.execute()
        columns: dict[str, list[object]] = {name: [] for name in self.feature_names}
        reply = iter(replies)
        for _ in entities:
            for view in self.views:
                for name, raw in zip(view.features, next(reply)):
                    columns[name].append(_decode(raw))
        return columns


@functools.lru_cache(maxsize=262_144)
def _redis_key(join_key: str, is_int: bool, entity_value: object, version: int, suffix: bytes) -> bytes:
    """Feast's key for one entity (cached: customers and terminals come back again and again)."""
    value = Value(int64_val=entity_value) if is_int else Value(string_val=entity_value)
    key = EntityKey(join_keys=[join_key], entity_values=[value])
    return serialize_entity_key(key, entity_key_serialization_version=version) + suffix


def _decode(raw: bytes | None) -> object:
    """A stored ValueProto as a Python value: a scalar, or a list for the *_list_val kinds."""
    if not raw:
        return None
    value = Value()
    value.ParseFromString(raw)
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    decoded = getattr(value, kind)
    return list(decoded.val) if kind.endswith("_list_val") else decoded
