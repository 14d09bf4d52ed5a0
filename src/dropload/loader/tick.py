"""One tick of one table: finish what an earlier tick left, then claim, load, archive.

Every step is recorded before it is taken (the intent) and is safe to repeat,
so a tick killed at any point is finished by the next one without loading a
shard twice: the intent fixes the batch's shards and its job id, the job id
makes the warehouse refuse a second run, and moves are guarded by generations.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dropload import layout
from dropload.archive import batch_partitions
from dropload.batching import MAX_SHARDS_PER_BATCH, plan_batches
from dropload.config import Config, TableConfig
from dropload.errors import (
    BudgetExhausted,
    DroploadError,
    LeaseHeld,
    ObjectExists,
    ObjectNotFound,
    PreconditionFailed,
)
from dropload.lease import Lease
from dropload.loader.isolation import Isolation
from dropload.logs import log_fields
from dropload.manifest import Intent, Manifest, ShardEntry
from dropload.partition import PARTITIONS_METADATA, decode_partitions
from dropload.quota import Budget, Clock, check_table, pause_table, utc_now
from dropload.reconcile import reconcile_batch
from dropload.redelivery import drop_seen
from dropload.retry import (
    is_data_reason,
    is_transient_reason,
    job_backoff,
    job_outcome,
)
from dropload.schema import SchemaField
from dropload.shard import is_shard_name, new_batch_id
from dropload.store.base import ROWS_METADATA, ObjectInfo, Store
from dropload.warehouse.base import JobResult, LoadRequest, Warehouse, redact_values

logger = logging.getLogger(__name__)

MAX_ATTEMPTS_PER_TICK = 3
"""Attempts (each a new job id) a tick spends on a transiently failing batch."""

__all__ = ["MAX_ATTEMPTS_PER_TICK", "MAX_SHARDS_PER_BATCH", "TableTick", "TickReport"]


CONFIRMED_STEPS = frozenset({"claim", "load", "archive"})
"""Steps before which the lease is confirmed (renewed by a conditional write),
so a tick whose lease was taken over stops before it moves shards or starts a
job."""


class TickAborted(DroploadError):
    """The tick lost its lease or hit a step it must not pass; it stopped early."""


@dataclass
class TickReport:
    """What one tick did for one table."""

    table: str
    status: str = "idle"
    """idle, loaded, skipped, waiting (stretched interval), running, paused or
    failed."""
    jobs: list[str] = field(default_factory=list)
    batches: int = 0
    shards: int = 0
    rows: int = 0
    bytes: int = 0
    error: str | None = None
    quarantined: int = 0
    dropped: int = 0
    """Spooled shards dropped because their first copy was loaded already."""
    interval_minutes: float | None = None
    """The table's interval after pacing (stretched near the budget)."""

    @property
    def failed(self) -> bool:
        """The tick could not do its work for this table."""
        return self.status == "failed"


@dataclass
class TableTick:
    """Runs one tick for one table; build a new one for every tick."""

    config: Config
    table: TableConfig
    fields: tuple[SchemaField, ...]
    store: Store
    warehouse: Warehouse
    owner: str
    step_hook: Callable[[str], None] = lambda step: None
    """Called at each named step; the crash harness kills the process there."""
    clock: Clock = utc_now
    sleep: Callable[[float], None] = time.sleep
    """Waits between attempts of a transiently failed job (tests skip it)."""
    report: TickReport = field(init=False)
    _budget: Budget = field(init=False)
    _lease: Lease | None = field(init=False, default=None)
    _generations: dict[str, int] = field(init=False, default_factory=dict)
    """Generation of each intent object as this tick last read or wrote it."""

    def __post_init__(self) -> None:
        self.report = TickReport(self.table.name)

    def run(self) -> TickReport:
        """Take the lease, recover, load new shards; never raises DroploadError."""
        name = self.table.name
        try:
            self._lease = Lease.acquire(
                self.store, name, self.owner, self.config.loader.lease_seconds
            )
        except LeaseHeld as exc:
            logger.info("%s", exc, extra=log_fields(table=name))
            self.report.status, self.report.error = "skipped", str(exc)
            return self.report
        except DroploadError as exc:
            logger.error(
                "table %s: tick failed taking the lease: %s",
                name,
                exc,
                extra=log_fields(table=name),
            )
            self.report.status, self.report.error = "failed", str(exc)
            return self.report
        stop = self._lease.keep_alive()
        try:
            self._work()
        except BudgetExhausted as exc:
            logger.warning("%s", exc)
            self.report.status, self.report.error = "paused", str(exc)
        except DroploadError as exc:
            logger.error(
                "table %s: tick failed: %s", name, exc, extra=log_fields(table=name)
            )
            self.report.status, self.report.error = "failed", str(exc)
        finally:
            stop.set()
            self._lease.release()
        return self.report

    def _work(self) -> None:
        self._step("recover")
        if self._held():
            return
        for intent in self._open_intents():
            if not self._finish(intent):
                return
        staged = self._drop_redelivered(self._staged())
        if not staged:
            logger.debug("table %s: nothing staged", self.table.name)
            return
        for chunk in plan_batches(staged):
            if not self._finish(self._begin(chunk)):
                return

    def _held(self) -> bool:
        """Count the table's jobs; True when pause or budget say: no job now."""
        self._budget, held = check_table(
            self.config, self.warehouse, self.store, self.table.name, self.clock()
        )
        self.report.interval_minutes = self._budget.interval_minutes()
        if held is not None:
            self.report.status, self.report.error = held
        return held is not None

    def _drop_redelivered(self, staged: list[ObjectInfo]) -> list[ObjectInfo]:
        """Delete spooled copies of shards that were claimed before."""
        kept = drop_seen(self.store, self.table.name, staged, self.clock())
        self.report.dropped += len(staged) - len(kept)
        return kept

    def _step(self, step: str) -> None:
        self.step_hook(step)
        if step in CONFIRMED_STEPS and self._lease is not None:
            self._lease.confirm()
        self._guard(step)

    def _guard(self, step: str) -> None:
        """Stop before an effect once the lease may no longer be ours."""
        if self._lease is not None and not self._lease.held():
            raise TickAborted(f"table {self.table.name}: lease lost at step {step}")

    def _open_intents(self) -> list[Intent]:
        found = []
        for info in self.store.list(layout.intents(self.table.name)):
            try:
                intent = Intent.from_json(self.store.read(info.name))
            except ObjectNotFound:
                continue
            except ValueError as exc:
                raise TickAborted(f"intent {info.name} is unreadable: {exc}") from None
            # The listed generation is never newer than what was read, so a
            # rewrite guarded by it fails rather than overwrite a newer intent.
            self._generations[intent.batch_id] = info.generation
            found.append(intent)
        return sorted(found, key=lambda i: i.batch_id)

    def _staged(self) -> list[ObjectInfo]:
        listed = self.store.list(layout.staging(self.table.name))
        shards = [s for s in listed if is_shard_name(s.basename)]
        return [s for s in shards if s.basename.endswith("." + self.table.format)]

    def _begin(self, staged: list[ObjectInfo]) -> Intent:
        intent = Intent(
            table=self.table.name,
            batch_id=new_batch_id(self.clock()),
            created=self.clock(),
            shards=tuple(_entry(s) for s in staged),
        )
        self._step("write-intent")
        name = layout.intent(intent.table, intent.batch_id)
        try:
            info = self.store.write(name, intent.to_json())
        except ObjectExists:
            # Batch ids are random: only our own write, whose answer was lost,
            # can be there.
            info = self._same_intent(name, intent)
        self._generations[intent.batch_id] = info.generation
        logger.debug(
            "table %s: batch %s opened",
            intent.table,
            intent.batch_id,
            extra=log_fields(intent),
        )
        return intent

    def _finish(self, intent: Intent) -> bool:
        """Claim, load and archive one batch; False when the table must stop."""
        intent = self._claim(intent)
        isolation = self._isolation()
        transient = 0
        while intent.shards:
            result = self._load(intent)
            if result.succeeded:
                return self._reconcile_and_archive(intent, result)
            if not result.done:
                self.report.status = "running"
                return False
            retried = self._after_failure(intent, result, isolation)
            self.report.quarantined = isolation.quarantined
            if retried is None:
                return False
            if is_transient_reason(result.error_reason, result.error_message or ""):
                transient += 1
                if transient >= MAX_ATTEMPTS_PER_TICK:
                    self.report.status = "failed"
                    self.report.error = (
                        f"batch still failing after {MAX_ATTEMPTS_PER_TICK} tries"
                    )
                    return False
                self.sleep(job_backoff(transient))
            intent = retried
        self._close_intent(intent)
        return True

    def _load(self, intent: Intent) -> JobResult:
        """Run the intent's job, counted against the table's budget."""
        self._step("load")
        self._budget.spend()
        result = self.warehouse.load(
            self._request(intent), timeout=self.config.loader.job_timeout_seconds
        )
        self._step("judge")
        self.report.jobs.append(result.job_id)
        return result

    def _isolation(self) -> Isolation:
        return Isolation(
            store=self.store,
            table=self.table,
            fields=self.fields,
            clock=self.clock,
            max_jobs=self.config.loader.isolation_jobs,
            proven=self._loaded_lately,
        )

    def _loaded_lately(self) -> bool:
        """A job of ours into the table succeeded in this tick or the window."""
        jobs = self._budget.jobs
        return self.report.batches > 0 or any(j.ours and j.succeeded for j in jobs)

    def _claim(self, intent: Intent) -> Intent:
        """Move the intent's shards into the batch folder; idempotent."""
        table, batch = intent.table, intent.batch_id
        claimed = {i.basename for i in self.store.list(layout.batch(table, batch))}
        staged = {i.basename: i for i in self.store.list(layout.staging(table))}
        missing: set[str] = set()

        def claim(entry: ShardEntry) -> None:
            src = staged.get(entry.name)
            if entry.name in claimed:
                if src is not None and src.generation == entry.generation:
                    self._delete_quietly(src)
                return
            if src is None or src.generation != entry.generation:
                missing.add(entry.name)
                return
            self._move(src, layout.batch(table, batch) + entry.name)

        self._step("claim")
        self._parallel(claim, intent.shards)
        if missing:
            logger.warning(
                "table %s: batch %s: %d shards vanished before the claim",
                table,
                batch,
                len(missing),
                extra=log_fields(intent),
            )
            intent = intent.without(missing)
        return intent

    def _request(self, intent: Intent) -> LoadRequest:
        suffix = f"*.{self.table.format}"
        uri = self.store.uri(layout.batch(intent.table, intent.batch_id) + suffix)
        return LoadRequest(
            job_id=intent.job_id,
            table=self.table,
            fields=self.fields,
            source_uris=(uri,),
            labels={"dropload-batch": intent.batch_id.lower()},
        )

    def _after_failure(
        self, intent: Intent, result: JobResult, isolation: Isolation
    ) -> Intent | None:
        reason, message = result.error_reason, result.error_message or ""
        # A failure on the data may quote row values: those stay out of the log.
        logger.warning(
            "table %s: job %s failed (%s): %s",
            intent.table,
            result.job_id,
            reason,
            "on the data it read" if is_data_reason(reason, message) else message,
            extra=log_fields(intent, result),
        )
        outcome = job_outcome(reason, message)
        if outcome == "transient":
            retried = intent.next_attempt(f"{reason}")
            self._step("rewrite-intent")
            self._write_intent(retried)
            return retried
        if outcome == "quota":
            # The failed job keeps its id: the next tick must insert a new one,
            # or BigQuery answers 409 with this same quota error for ever.
            self._step("rewrite-intent")
            self._write_intent(intent.next_attempt(f"{reason}"))
            self.report.status = "paused"
            self.report.error = pause_table(
                self.store, self._budget, result.job_id, message or "quotaExceeded"
            )
            return None
        if is_data_reason(reason, message):
            narrowed = isolation.narrow(intent, result)
            if narrowed is not None:
                self._step("rewrite-intent")
                self._write_intent(narrowed)
                return narrowed
        self._unclaim(intent)
        self.report.status = "failed"
        self.report.error = (
            f"job {result.job_id} failed ({reason}): {redact_values(message)}"
        )
        return None

    def _write_intent(self, new: Intent) -> None:
        """Rewrite the intent at the generation this tick knows, never blindly."""
        name = layout.intent(new.table, new.batch_id)
        expected = self._generations.get(new.batch_id)
        if expected is None:
            raise TickAborted(f"intent {name}: generation unknown; not rewritten")
        try:
            info = self.store.write(name, new.to_json(), if_generation_match=expected)
        except (PreconditionFailed, ObjectNotFound):
            info = self._same_intent(name, new)
        self._generations[new.batch_id] = info.generation

    def _same_intent(self, name: str, intent: Intent) -> ObjectInfo:
        """The stored intent when it says what `intent` says; else TickAborted."""
        info = self.store.stat(name)
        try:
            stored = Intent.from_json(self.store.read(name)) if info else None
        except (ObjectNotFound, ValueError):
            stored = None
        if info is None or stored != intent:
            raise TickAborted(f"intent {name} changed; another loader works on it")
        return info

    def _unclaim(self, intent: Intent) -> None:
        """Put a batch that failed on its data back into staging, then drop it."""
        table, batch = intent.table, intent.batch_id
        self._step("unclaim")
        claimed = self.store.list(layout.batch(table, batch))
        self._parallel(
            lambda info: self._move(info, layout.staging(table) + info.basename),
            claimed,
        )
        self._close_intent(intent)

    def _reconcile_and_archive(self, intent: Intent, result: JobResult) -> bool:
        """Archive unless the rows loaded disagree with the shards' row counts."""
        mismatch = reconcile_batch(self.store, intent, result, self.table.format)
        if mismatch is not None and self.config.loader.reconcile == "hold":
            logger.error("%s", mismatch.message, extra=log_fields(intent, result))
            self.report.status, self.report.error = "failed", mismatch.message
            return False
        if mismatch is not None:
            logger.warning("%s", mismatch.message, extra=log_fields(intent, result))
        self._archive(intent, result)
        return True

    def _archive(self, intent: Intent, result: JobResult) -> None:
        table, batch = intent.table, intent.batch_id
        day = layout.day_of(intent.created)
        self._step("write-manifest")
        try:
            self.store.write(
                layout.manifest(table, day, batch),
                self._manifest(intent, result, day).to_json(),
            )
        except ObjectExists:
            logger.debug(
                "table %s: manifest of %s written before",
                table,
                batch,
                extra=log_fields(intent),
            )
        self._step("archive")
        claimed = self.store.list(layout.batch(table, batch))
        target = layout.archived_batch(table, day, batch)
        self._parallel(lambda i: self._move(i, target + i.basename), claimed)
        self._close_intent(intent)
        rows = result.output_rows or 0
        self.report.status = "loaded"
        self.report.batches += 1
        self.report.shards += len(intent.shards)
        self.report.rows += rows
        self.report.bytes += intent.size
        logger.info(
            "table %s: loaded %d rows from %d shards in job %s",
            table,
            rows,
            len(intent.shards),
            result.job_id,
            extra=log_fields(intent, result),
        )

    def _manifest(self, intent: Intent, result: JobResult, day: str) -> Manifest:
        return Manifest(
            table=intent.table,
            destination=self.table.destination,
            batch_id=intent.batch_id,
            job_id=result.job_id,
            attempt=intent.attempt,
            day=day,
            shards=intent.shards,
            rows=result.output_rows or 0,
            byte_count=intent.size,
            format=self.table.format,
            claimed_at=intent.created,
            loaded_at=result.ended or self.clock(),
            partitions=batch_partitions(
                self.store,
                self.table,
                self.fields,
                intent.shards,
                (
                    layout.batch(intent.table, intent.batch_id),
                    layout.archived_batch(intent.table, day, intent.batch_id),
                ),
                result.created or self.clock(),
            ),
            attempts_log=intent.attempts_log,
        )

    def _close_intent(self, intent: Intent) -> None:
        self._step("close-intent")
        with contextlib.suppress(ObjectNotFound):
            self.store.delete(layout.intent(intent.table, intent.batch_id))

    def _move(self, info: ObjectInfo, target: str) -> None:
        self._guard("move")
        self.store.move(info, target)

    def _delete_quietly(self, info: ObjectInfo) -> None:
        with contextlib.suppress(ObjectNotFound):
            self.store.delete(info.name, if_generation_match=info.generation)

    def _parallel(self, fn: Callable[[Any], object], items: Iterable[Any]) -> None:
        work = list(items)
        if len(work) <= 1:
            for item in work:
                fn(item)
            return
        workers = min(self.config.loader.max_workers, len(work))
        with ThreadPoolExecutor(workers, thread_name_prefix="move") as pool:
            for future in [pool.submit(fn, item) for item in work]:
                future.result()


def _entry(info: ObjectInfo) -> ShardEntry:
    rows = info.metadata.get(ROWS_METADATA)
    return ShardEntry(
        name=info.basename,
        generation=info.generation,
        size=info.size,
        rows=int(rows) if rows and rows.isdigit() else None,
        partitions=decode_partitions(info.metadata.get(PARTITIONS_METADATA)),
    )
