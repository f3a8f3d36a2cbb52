"""`fraud bootstrap` and `fraud worker-health`: what `docker compose up` needs besides the other commands.

`fraud bootstrap` gives an empty platform its first champion, in the shared data folder and
registry the long-running services use, so that the scorer has a model to serve: simulate,
ingest, build the offline tables, apply the definitions, materialise, train, approve and
promote. With a champion already in the registry it does nothing, so it can run at every
start. A run stopped halfway resumes: payments already in the raw store are used, not
simulated again (their ids would be refused), and every later step is safe to repeat.

`fraud worker-health` is the worker container's health check: whether a worker on this host
keeps asking the scoring stream for events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from contracts.settings import Settings
from fraud.console import console, fail

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

    from training.train import TrainingResult

app = typer.Typer()

BOOTSTRAP_BY = "fraud bootstrap"
# A world that trains a model passing the gate in about a minute: the scorer's first champion,
# not a benchmark. 45 days leave the label delay and the holdout enough labelled days.
DEFAULT_CUSTOMERS = 500
DEFAULT_TERMINALS = 1000
DEFAULT_DAYS = 45
DEFAULT_SEED = 7


@dataclass(frozen=True)
class World:
    """The size of the simulated history a first model is trained on."""

    customers: int = DEFAULT_CUSTOMERS
    terminals: int = DEFAULT_TERMINALS
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED


@app.command()
def bootstrap(
    customers: Annotated[int, typer.Option(min=1, help="Simulated customers.")] = DEFAULT_CUSTOMERS,
    terminals: Annotated[int, typer.Option(min=1, help="Simulated terminals.")] = DEFAULT_TERMINALS,
    days: Annotated[int, typer.Option(min=1, help="Simulated days, ending yesterday.")] = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
) -> None:
    """Train, approve and promote a first champion when the registry has none; otherwise do nothing."""
    from contracts.registry import RegistryUnavailable

    settings = Settings()
    try:
        champion = champion_version(settings)
    except RegistryUnavailable as error:
        fail(str(error))
    if champion is not None:
        console.print(f"champion v{champion} of {settings.model_name} already serves; nothing to do")
        return
    trained = bootstrap_platform(settings, World(customers, terminals, days, seed))
    console.print(
        f"registered {trained.model_name} v{trained.version}, approved and promoted to champion: "
        + ", ".join(f"{name} {value:.3f}" for name, value in trained.metrics.items())
    )


def champion_version(settings: Settings) -> str | None:
    """The version `champion` points at, None before the first promotion (RegistryUnavailable
    when the registry cannot tell)."""
    from contracts.registry import alias_version, registry_client

    return alias_version(registry_client(settings), settings)


def bootstrap_platform(settings: Settings, world: World) -> TrainingResult:
    """Every step from payments to a promoted champion, in `settings`' data folder and registry."""
    from feature_repo.pipeline import build_offline_tables
    from feature_repo.store import apply_definitions, feature_store, limit_offline_memory, materialize_views
    from fraud.features import check_loaded

    limit_offline_memory(settings)
    transactions = _stored_or_simulated(settings, world)
    with console.status("building offline feature tables"):
        build_offline_tables(settings, transactions)
    store = feature_store(settings)
    apply_definitions(store, settings)
    with console.status("materialising to Redis"):
        loaded = materialize_views(store, settings, end=datetime.now(UTC))
    check_loaded(loaded, settings)
    console.print("built, applied and materialised the features: feature service " + settings.feature_service)
    with console.status("training the first model"):
        trained = _train(settings, store, transactions)
    _approve_and_promote(settings, trained.version)
    return trained


def _stored_or_simulated(settings: Settings, world: World) -> pd.DataFrame:
    """The raw store's payments; an empty store first gets a simulated history, through the contract."""
    from data.contract import ContractError
    from data.raw_store import RawStore
    from data.simulate import SimulationConfig, simulate_transactions

    raw = RawStore(settings)
    if raw.parts():
        console.print(f"using the {len(raw.parts())} files already in the raw store {raw.directory}")
        return raw.load()
    config = SimulationConfig(
        n_customers=world.customers, n_terminals=world.terminals, n_days=world.days, seed=world.seed
    )
    with console.status("simulating transactions"):
        frame = simulate_transactions(config)
    incoming = settings.incoming_dir / "bootstrap.parquet"
    incoming.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(incoming, index=False)
    try:
        result = raw.ingest_file(incoming)
    except ContractError as error:  # the simulator breaking the contract is a bug, said in full
        fail(f"the simulated history was rejected: {error}")
    console.print(
        f"simulated and ingested {result.rows:,} payments ({int(frame['is_fraud'].sum()):,} frauds) "
        f"from {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}"
    )
    return raw.load()


def _train(settings: Settings, store: FeatureStore, transactions: pd.DataFrame) -> TrainingResult:
    from contracts.registry import RegistryUnavailable
    from training.train import train_candidate
    from training.validate import GateFailed

    try:
        return train_candidate(settings, store, transactions)
    except GateFailed as error:
        fail(f"{error}; simulate a larger world (--customers, --days) or another --seed")
    except (ValueError, RegistryUnavailable) as error:
        fail(str(error))


def _approve_and_promote(settings: Settings, version: str) -> None:
    from contracts.registry import RegistryUnavailable
    from training.lifecycle import LifecycleError, approve, promote

    try:
        approve(settings, version, by=BOOTSTRAP_BY, note="first model of an empty platform; gate passed")
        promote(settings, version, by=BOOTSTRAP_BY, reason="no champion yet")
    except (LifecycleError, RegistryUnavailable) as error:
        fail(str(error))


@app.command("worker-health")
def worker_health(
    max_idle: Annotated[
        float, typer.Option(min=0.0, help="Seconds since the worker last asked the stream for events, at most.")
    ] = 60.0,
) -> None:
    """Exit 0 when a `fraud worker` on this host asked the scoring stream for events within --max-idle seconds."""
    import redis

    settings = Settings()
    try:
        idle = polling_idle_seconds(settings)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        fail(f"cannot reach Redis at {settings.redis_location} ({error}); start it or set REDIS_URL")
    if idle is None:
        fail(f"no connection from this host is reading a stream of {settings.redis_location}; start `fraud worker`")
    if idle > max_idle:
        fail(f"the worker last read the stream {idle:.0f} s ago (at most {max_idle:.0f}); restart it")
    console.print(f"a worker read the stream {idle:.0f} s ago")


def polling_idle_seconds(settings: Settings) -> float | None:
    """Seconds since a connection from this host to the settings' Redis db last issued a stream
    read (XREADGROUP), None when no such connection is open.

    The worker blocks a second per read and reads again at once, and Redis's client list shows
    each connection's last command and how long ago it came, whatever the server's version
    (XINFO CONSUMERS counts empty reads as activity only from Redis 7.2). This host's
    connections are those from its own address: in compose, the worker container's.
    """
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        me = cast(dict[str, Any], client.client_info())
        connections = cast(list[dict[str, Any]], client.client_list())
    finally:
        client.close()
    host = _address_host(str(me["addr"]))
    idles = [
        float(c["idle"])
        for c in connections
        if c.get("cmd") == "xreadgroup" and int(c["db"]) == settings.redis_db and _address_host(str(c["addr"])) == host
    ]
    return min(idles) if idles else None


def _address_host(address: str) -> str:
    """The host of a Redis client address, `host:port` (`[v6]:port` or `v6:port`)."""
    return address.rsplit(":", 1)[0]
