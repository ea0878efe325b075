"""The control-plane process: starts every component, serves the API, stops cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping

from aiohttp import web

from services.control.app import create_app
from services.control.configs import ConfigWriter
from services.control.context import ControlContext
from services.control.credentials import CredentialWriter
from services.control.ingest import ResultsIngester
from services.control.mappings import MappingWriter
from services.control.oauth import OAuthService
from services.control.settings import ControlSettings
from services.control.users import UserDirectory
from shared.credentials import CredentialCipher, MissingKeyError
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.logging import configure_logging, get_logger
from shared.settings import Settings, get_settings
from shared.sinks.oauth import OAuthClientSettings
from shared.store import Store

log = get_logger(__name__)


class ConfigurationError(ValueError):
    pass


class ControlPlane:
    def __init__(
        self,
        settings: Settings,
        control: ControlSettings,
        oauth: Mapping[str, OAuthClientSettings] | None = None,
    ) -> None:
        """`oauth`: OAuth flows' settings by provider name, in place of the environment's."""
        if not control.admin_tokens:
            raise ConfigurationError(
                "no admin token: set BILLSYNC_CONTROL_ADMIN_TOKENS to a JSON list of long "
                "random strings, e.g. '[\"<openssl rand -hex 24>\"]'"
            )
        self.settings = settings
        self.control = control
        cipher = CredentialCipher(settings.credentials_key)  # fails early without a key
        store = Store(control.database_url)
        producer = make_producer(settings.kafka_bootstrap_servers)
        self.ctx = ControlContext(
            settings=settings,
            control=control,
            store=store,
            producer=producer,
            configs=ConfigWriter(settings, producer, store),
            credentials=CredentialWriter(settings, producer, cipher),
            mappings=MappingWriter(settings, producer),
            users=UserDirectory.load(control.users_file),
            oauth=OAuthService(control, store.engine, oauth),
            ingester=ResultsIngester(settings, store, producer, control.consumer_group),
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.control.host}:{self.port}"

    async def start(self) -> None:
        ctx = self.ctx
        await ensure_topics(self.settings)
        await ctx.store.start()
        await ctx.producer.start()
        await asyncio.gather(ctx.configs.start(), ctx.credentials.start(), ctx.mappings.start())
        await ctx.oauth.start()
        await ctx.ingester.start()
        self._runner = web.AppRunner(create_app(ctx), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.control.host, self.control.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.control.port
        ctx.oauth.base_url = self.control.base_url(self.port)
        log.info(
            "control_started",
            url=self.base_url,
            database=ctx.store.url,
            dialect=ctx.store.dialect,
            ingest_group=ctx.ingester.group_id,
        )

    async def stop(self) -> None:
        ctx = self.ctx
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        steps = {
            "ingester": ctx.ingester.stop,
            "oauth": ctx.oauth.stop,
            "configs": ctx.configs.stop,
            "credentials": ctx.credentials.stop,
            "mappings": ctx.mappings.stop,
            "producer": ctx.producer.stop,
            "store": ctx.store.close,
        }
        for name, step in steps.items():
            try:
                await step()
            except Exception:  # keep stopping the rest; say what did not stop cleanly
                log.exception("control_stop_failed", component=name)
        log.info("control_stopped")


async def serve(settings: Settings, control: ControlSettings) -> None:
    plane = ControlPlane(settings, control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await plane.start()
        await stop.wait()
    finally:
        await plane.stop()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, service="control")
    try:
        asyncio.run(serve(settings, ControlSettings()))
    except (ConfigurationError, MissingKeyError) as exc:
        log.error("control_not_started", reason=str(exc))
        raise SystemExit(2) from None
