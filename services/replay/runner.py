"""Read the range, select bills, publish ReplayRequests (or plan them in a dry run)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from services.replay.options import ReplayInputError, ReplayOptions
from services.replay.plan import plan_bill
from services.replay.ranges import PartitionRange, resolve_ranges
from shared.contracts import Account, Bill, parse_config
from shared.kafka.client_options import kafka_options
from shared.kafka.producer import make_producer
from shared.kafka.ranges import read_ranges
from shared.kafka.table import CompactedTable
from shared.logging import get_logger
from shared.replay import replay_request
from shared.routing import CompiledRoute, compile_route
from shared.settings import Settings
from shared.sinks.invoice_map import InvoiceMapRecord

log = get_logger("replay")


@dataclass(slots=True)
class ReplayStats:
    replay_id: str
    topic: str
    replay_topic: str
    dry_run: bool
    ranges: list[dict[str, int]] = field(default_factory=list)
    read: int = 0
    selected: int = 0
    published: int = 0
    skipped_account: int = 0
    malformed: int = 0
    unroutable: int = 0  # dry run: bills no configuration would take

    def summary_text(self) -> str:
        spans = ", ".join(f"p{r['partition']} [{r['start']}, {r['stop']})" for r in self.ranges)
        verb = "would publish" if self.dry_run else "published"
        count = self.selected if self.dry_run else self.published
        text = (
            f"replay {self.replay_id}: read {self.read} records from {self.topic} "
            f"({spans or 'nothing in range'}); selected {self.selected}; {verb} {count} "
            f"to {self.replay_topic}"
        )
        extras = [
            f"{n} {what}"
            for n, what in (
                (self.skipped_account, "other accounts"),
                (self.malformed, "malformed (skipped)"),
                (self.unroutable, "taken by no configuration"),
            )
            if n
        ]
        return text + (f"; {', '.join(extras)}" if extras else "")


def _route(raw: bytes) -> CompiledRoute:
    return compile_route(parse_config(raw))


class Replayer:
    def __init__(
        self,
        settings: Settings,
        opts: ReplayOptions,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        progress_seconds: float = 2.0,
        progress_records: int = 1000,
    ) -> None:
        self.settings = settings
        self.opts = opts
        self.out, self.err = out, err
        self._progress_seconds, self._progress_records = progress_seconds, progress_records
        self.topic = settings.topics.name(opts.topic_field)
        bootstrap = settings.kafka_bootstrap_servers
        self.stats = ReplayStats(
            f"rpl_{uuid.uuid4().hex[:16]}",
            self.topic,
            settings.topics.name("bill_replay"),
            opts.dry_run,
        )
        t = settings.topics
        self.configs = CompactedTable[CompiledRoute](
            t.name("integration_configs"), bootstrap, _route
        )
        self.accounts = CompactedTable[Account](
            t.name("accounts"), bootstrap, Account.model_validate_json
        )
        self.invoices = CompactedTable[InvoiceMapRecord](
            t.name("invoice_map"), bootstrap, InvoiceMapRecord.model_validate_json
        )
        self._tables: list[CompactedTable[Any]] = [self.configs]
        if opts.dry_run:
            self._tables += [self.accounts, self.invoices]
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future[Any]] = []
        self._last_progress = time.monotonic()
        self._last_progress_read = 0
        self._position: dict[int, int] = {}

    async def run(self) -> ReplayStats:
        consumer = AIOKafkaConsumer(
            **kafka_options(self.settings.kafka_bootstrap_servers),
            group_id=None,
            enable_auto_commit=False,
        )
        started: list[CompactedTable[Any]] = []
        await consumer.start()
        try:
            ranges = await resolve_ranges(consumer, self.topic, self.opts)
            self.stats.ranges = [asdict(r) for r in ranges]
            for table in self._tables:
                try:
                    await table.start()
                except RuntimeError as exc:  # the table's topic does not exist
                    raise ReplayInputError(str(exc)) from exc
                started.append(table)
            self._check_configs()
            if not self.opts.dry_run:
                self._producer = make_producer(self.settings.kafka_bootstrap_servers)
                await self._producer.start()
            await self._read(consumer, ranges)
            await self._drain()
        finally:
            if self._producer is not None:
                await self._producer.stop()
            for table in started:
                await table.stop()
            await consumer.stop()
        self._finish()
        return self.stats

    def _check_configs(self) -> None:
        unknown = [c for c in self.opts.config_ids if c not in self.configs.data]
        if unknown:
            known = ", ".join(sorted(self.configs.data)) or "none"
            raise ReplayInputError(
                f"unknown configuration(s) {', '.join(unknown)} in --config; known: {known}"
            )

    async def _read(self, consumer: AIOKafkaConsumer, ranges: list[PartitionRange]) -> None:
        spans = {TopicPartition(self.topic, r.partition): (r.start, r.stop) for r in ranges}
        positions: dict[TopicPartition, int] = {}
        async for records in read_ranges(consumer, spans, positions):
            for record in records:
                await self._handle(record)
            self._position.update((tp.partition, at) for tp, at in positions.items())
            self._progress()

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.stats.read += 1
        try:
            bill = Bill.model_validate_json(record.value or b"")
        except ValueError:
            self.stats.malformed += 1
            return
        if self.opts.accounts and bill.account_id not in self.opts.accounts:
            self.stats.skipped_account += 1
            return
        self.stats.selected += 1
        approved = self.opts.topic_field == "bill_approved"
        only = frozenset(self.opts.config_ids) or None
        if self.opts.dry_run:
            plan = plan_bill(
                bill,
                record.partition,
                record.offset,
                self.configs.values(),
                self.accounts.get,
                self.invoices.get,
                approved,
                only,
            )
            self.stats.unroutable += 0 if plan.targets else 1
            print(json.dumps(plan.to_json()) if self.opts.json else plan.to_text(), file=self.out)
            return
        assert self._producer is not None
        request = replay_request(
            self.settings,
            bill,
            record.topic,
            record.partition,
            record.offset,
            list(self.opts.config_ids) or None,
            self.stats.replay_id,
        )
        self._pending.append(
            await self._producer.send(
                self.stats.replay_topic, request.to_bytes(), key=bill.id.encode()
            )
        )
        if len(self._pending) >= 1000:
            await self._drain()

    async def _drain(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)  # acknowledged by the broker, or raise
            self.stats.published += len(pending)

    def _progress(self) -> None:
        now = time.monotonic()
        if (
            now - self._last_progress < self._progress_seconds
            and self.stats.read - self._last_progress_read < self._progress_records
        ):
            return
        self._last_progress, self._last_progress_read = now, self.stats.read
        s = self.stats
        where = " ".join(f"p{p}@{o}" for p, o in sorted(self._position.items()))
        print(
            f"replay: read={s.read} selected={s.selected} published={s.published} position {where}",
            file=self.err,
            flush=True,
        )

    def _finish(self) -> None:
        if self.opts.json:
            print(json.dumps({"summary": asdict(self.stats)}), file=self.out)
        else:
            print(self.stats.summary_text(), file=self.out)
        log.info(
            "replay_finished", **{k: v for k, v in asdict(self.stats).items() if k != "ranges"}
        )
