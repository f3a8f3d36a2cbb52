"""Reading a feature service's stored features straight from Feast's Redis online store.

One round trip per request (one HMGET per stored view and payment, run by a server-side
script), with keys, hash fields and values encoded exactly as Feast writes them (Feast's
own helpers), and nothing resolved per request: the registry is read once at start. The
parity tests compare what this returns with `get_historical_features`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from feast import FeatureService, FeatureStore
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from contracts.settings import Settings
from feature_repo.transforms import Ragged

# HMGET of every key with the fields of its view, in one command: redis-py's cost per
# pipelined command, not Redis, dominated batches (36 ms against 14 ms for 1,000 payments).
# KEYS are grouped by view; ARGV holds the view count, then per view its key count, field
# count and fields. A missing field comes back as nil, as from HMGET itself.
_HMGET_BY_VIEW = """
local replies, first, at = {}, 1, 2
for _ = 1, tonumber(ARGV[1]) do
  local n_keys, n_fields = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  local fields = {unpack(ARGV, at + 2, at + 1 + n_fields)}
  for i = first, first + n_keys - 1 do
    replies[i] = redis.call('HMGET', KEYS[i], unpack(fields))
  end
  first, at = first + n_keys, at + 2 + n_fields
end
return replies
"""


@dataclass(frozen=True)
class StoredView:
    """What reading one stored feature view needs, precomputed."""

    name: str
    join_key: str
    value_type: ValueType
    features: list[str]
    fields: list[bytes]  # Feast's hash field per feature, then the view's event timestamp field
    kinds: list[ValueType]  # per feature, the type of its values
    ttl_us: int  # rows older than this at the payment's time count as absent, as offline; 0: no limit

    @property
    def absent(self) -> list[None]:
        """The reply of a key the store has no (or no fresh enough) row for."""
        return [None] * len(self.fields)


@dataclass(frozen=True)
class StoredFeatures:
    """Per stored feature, a column over the payments; and which values the store lacked."""

    columns: dict[str, Sequence[object] | Ragged]
    missing: np.ndarray  # rows x features (in `OnlineFeatureReader.feature_names` order), bool


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
            self.views.append(
                StoredView(
                    name=view.name,
                    join_key=entity.join_key,
                    value_type=entity.value_type,
                    features=names,
                    fields=[*(_mmh3(f"{view.name}:{n}") for n in names), f"_ts:{view.name}".encode()],
                    kinds=[feature.dtype.to_value_type() for feature in projection.features],
                    ttl_us=(view.ttl or timedelta(0)) // timedelta(microseconds=1),
                )
            )
        self.redis = aioredis.Redis.from_url(settings.redis_url)
        self._hmget_by_view = self.redis.register_script(_HMGET_BY_VIEW)

    @property
    def feature_names(self) -> list[str]:
        return [name for view in self.views for name in view.features]

    def redis_key(self, view: StoredView, entity_value: int | str) -> bytes:
        return _redis_key(
            view.join_key, view.value_type == ValueType.INT64, entity_value, self._key_version, self._suffix
        )

    async def read(self, entities: Sequence[Mapping[str, Any]], event_micros: Sequence[int]) -> StoredFeatures:
        """Per stored feature, its values for the entity rows: list-valued features flattened
        (`Ragged`), others one Python value per row (None when the store has none).

        `event_micros`: each payment's time (`feature_repo.transforms.event_micros`). A row
        older than its view's TTL at that time counts as absent, the rule of Feast's
        point-in-time join (a row is used while its stamp + TTL >= the payment's time)."""
        row_keys = [[self.redis_key(view, row[view.join_key]) for row in entities] for view in self.views]
        # Each entity once: payments of a batch share terminals, devices and customers.
        unique = [list(dict.fromkeys(keys)) for keys in row_keys]
        args: list[bytes | int] = [len(self.views)]
        for view, keys in zip(self.views, unique):
            args += [len(keys), len(view.fields), *view.fields]
        replies = iter(await self._hmget_by_view(keys=[key for keys in unique for key in keys], args=args))
        columns: dict[str, Sequence[object] | Ragged] = {}
        missing: list[np.ndarray | list[bool]] = []
        for view, keys, view_keys in zip(self.views, row_keys, unique):
            by_key = {key: reply for key, reply in zip(view_keys, replies)}
            fresh = _fresh(view, [by_key[key] for key in keys], event_micros)
            rows = [by_key[key] if ok else view.absent for key, ok in zip(keys, fresh)]
            for f, (name, kind) in enumerate(zip(view.features, view.kinds)):
                if kind in _PACKED and len(entities) >= _BULK_FROM_ROWS:
                    packed = _PACKED[kind]
                    elements = {key: _elements(reply[f], packed) for key, reply in by_key.items()}
                    columns[name], absent = _ragged(
                        [elements[key] if ok else None for key, ok in zip(keys, fresh)], packed
                    )
                    missing.append(absent)
                else:
                    decode = _decode if kind.name.endswith("_LIST") else _decode_scalar
                    columns[name] = values = [decode(reply[f]) for reply in rows]
                    missing.append([value is None for value in values])
        absent_by_row = np.array(missing, dtype=bool).reshape(len(missing), len(entities)).T
        return StoredFeatures(columns=columns, missing=absent_by_row)


def _fresh(view: StoredView, replies: Sequence[Sequence[bytes | None]], event_micros: Sequence[int]) -> list[bool]:
    """Per row, whether its stored row may be used at the payment's time (no row: nothing to drop)."""
    if not view.ttl_us:
        return [True] * len(replies)
    stamps = [_stamp_micros(reply[-1]) for reply in replies]
    return [stamp is None or stamp + view.ttl_us >= at for stamp, at in zip(stamps, event_micros)]


@functools.lru_cache(maxsize=65_536)
def _stamp_micros(raw: bytes | None) -> int | None:
    """A stored event timestamp (a protobuf Timestamp, as Feast writes it) in microseconds since the epoch."""
    if not raw:
        return None
    stamp = Timestamp()
    stamp.ParseFromString(raw)
    return stamp.seconds * 1_000_000 + stamp.nanos // 1_000


@functools.lru_cache(maxsize=262_144)
def _redis_key(join_key: str, is_int: bool, entity_value: int | str, version: int, suffix: bytes) -> bytes:
    """Feast's key for one entity (cached: customers and terminals come back again and again)."""
    value = Value(int64_val=int(entity_value)) if is_int else Value(string_val=str(entity_value))
    key = EntityKey(join_keys=[join_key], entity_values=[value])
    return serialize_entity_key(key, entity_key_serialization_version=version) + suffix


def _parse(raw: bytes | None) -> tuple[str, Value] | None:
    """A stored ValueProto and the kind of value it holds; None when it holds none."""
    if not raw:
        return None
    value = Value()
    value.ParseFromString(raw)
    kind = value.WhichOneof("val")
    return None if kind is None else (kind, value)


def _decode(raw: bytes | None) -> object:
    """A stored ValueProto as a Python value: a scalar, or a list for the *_list_val kinds."""
    parsed = _parse(raw)
    if parsed is None:
        return None
    kind, value = parsed
    decoded = getattr(value, kind)
    return list(decoded.val) if kind.endswith("_list_val") else decoded


# Scalars decoded once per distinct stored bytes: few distinct values, and each is immutable.
_decode_scalar = functools.lru_cache(maxsize=65_536)(_decode)


@dataclass(frozen=True)
class _Packed:
    """A list kind decoded in bulk: its ValueProto field, and how its packed elements become numbers."""

    field: str
    numbers: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

    @functools.cached_property
    def tag(self) -> int:
        number = Value.DESCRIPTOR.fields_by_name[self.field].number
        assert number < 16, "a one-byte tag"
        return number << 3 | 2  # length-delimited


def _ragged(payloads: Sequence[bytes | None], packed: _Packed) -> tuple[Ragged, np.ndarray]:
    """A list-valued column from each row's packed elements (None: no value), and where the
    store had no value. The rows' elements are joined and converted by numpy at once: element
    by element in Python they cost ~65 ns each, ~20 ms for a batch of 1,000."""
    absent = np.fromiter((payload is None for payload in payloads), dtype=bool, count=len(payloads))
    present = [payload or b"" for payload in payloads]
    sizes = np.fromiter(map(len, present), dtype=np.int64, count=len(present))
    values, lengths = packed.numbers(np.frombuffer(b"".join(present), dtype=np.uint8), sizes)
    return Ragged.flat(values, lengths), absent


def _elements(raw: bytes | None, packed: _Packed) -> bytes | None:
    """The packed elements of one stored list value; None when the store has none."""
    if not raw:
        return None
    elements = _plain_elements(raw, packed.tag)
    if elements is not None:
        return elements
    # Not protobuf's own encoding (Feast writes that): let protobuf read it, then re-encode it.
    parsed = _parse(raw)
    if parsed is None:
        return None
    kind, value = parsed
    if kind != packed.field:
        raise ValueError(f"stored {kind} where the registry declares {packed.field}")
    return _plain_elements(value.SerializeToString(), packed.tag)


def _plain_elements(raw: bytes, tag: int) -> bytes | None:
    """The elements of a list ValueProto as protobuf encodes it (the list field's tag and
    length, then the list's field 1: tag, length, packed elements); None if encoded otherwise."""
    if raw[0] != tag:
        return None
    size, at = _varint(raw, 1)
    if size == 0 and at == len(raw):
        return b""  # an empty list
    if at + size != len(raw) or raw[at] != 0x0A:
        return None
    size, at = _varint(raw, at + 1)
    return raw[at:] if at + size == len(raw) else None


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint starting at `at`, and the position after it (-1 when `data` ends first)."""
    value = shift = 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7
    return -1, at


def _varints(data: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Packed int64 varints (7 bits a byte, low first; the high bit set on all but the last)
    as numbers, and how many of them each payload of `sizes` bytes holds."""
    ends = np.flatnonzero(data < 0x80)  # the last byte of each number
    lengths = np.diff(np.searchsorted(ends, np.cumsum(sizes)), prepend=0)
    extra = np.diff(ends, prepend=-1) - 1  # bytes after the first
    starts = ends - extra
    values = np.zeros(len(ends), dtype=np.uint64)
    for k in range(int(extra.max(initial=-1)) + 1):  # byte k of every number at once
        part = (data[np.minimum(starts + k, ends)] & 0x7F).astype(np.uint64)
        part[extra < k] = 0
        values |= part << np.uint64(7 * k)
    # A negative int64 is a 10-byte two's complement varint: its bits wrap into place in uint64.
    return values.view(np.int64), lengths


def _doubles(data: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Packed doubles: 8 little-endian bytes each."""
    return data.view("<f8").astype(np.float64), sizes // 8


# The list kinds of the stored state, decoded in bulk from this many rows on: numpy's fixed
# cost per call (~90 us a column) is more than a few rows cost value by value.
_BULK_FROM_ROWS = 16
_PACKED = {
    ValueType.INT64_LIST: _Packed("int64_list_val", _varints),
    ValueType.DOUBLE_LIST: _Packed("double_list_val", _doubles),
}
