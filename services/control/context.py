"""Everything a request handler needs, stored once on the aiohttp application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from services.control.configs import ConfigWriter
    from services.control.credentials import CredentialWriter
    from services.control.ingest import ResultsIngester
    from services.control.mappings import MappingWriter
    from services.control.oauth import OAuthService
    from services.control.settings import ControlSettings
    from services.control.users import UserDirectory
    from shared.settings import Settings
    from shared.store import Store


@dataclass
class ControlContext:
    settings: Settings
    control: ControlSettings
    store: Store
    producer: AIOKafkaProducer
    configs: ConfigWriter
    credentials: CredentialWriter
    mappings: MappingWriter
    users: UserDirectory
    oauth: OAuthService
    ingester: ResultsIngester


CTX = web.AppKey("billsync_control", ControlContext)
