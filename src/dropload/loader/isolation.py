"""Set a batch's bad shards aside after its load failed on data, so the rest loads.

Bad shards are found from the job's errors, else by checking the batch's shards
locally (no job spent), and moved to the quarantine. Only when neither names a
shard is the batch split: its newer half goes back to staging and the older half
is loaded alone, each try an extra job, at most `loader.isolation_jobs` per batch
and tick. Shards move before the intent is rewritten, so a crash in between
leaves them out of the batch (the next tick's claim drops what it cannot find).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dropload import layout
from dropload.config import TableConfig
from dropload.manifest import Intent
from dropload.poison import ShardChecker, named_shards, split_batch
from dropload.quarantine import quarantine_shard
from dropload.schema import SchemaField
from dropload.store.base import ObjectInfo, Store
from dropload.warehouse.base import JobResult

logger = logging.getLogger(__name__)


@dataclass
class Isolation:
    """The isolation of one batch in one tick: what it found and spent."""

    store: Store
    table: TableConfig
    fields: Sequence[SchemaField]
    clock: Callable[[], datetime]
    max_jobs: int
    proven: Callable[[], bool] = lambda: True
    """True once a load of this table succeeded lately: only then is a lone shard
    that fails with no reason given taken to be bad, not the job's set-up."""
    extra_jobs: int = 0
    quarantined: int = 0
    returned: int = 0
    """Shards put back into staging by a split."""
    _checked: bool = field(default=False, init=False)

    def narrow(self, intent: Intent, result: JobResult) -> Intent | None:
        """The batch without its bad shards (or its newer half), as a new attempt.

        Returns an intent with no shards when all were bad, None when the
        isolation gave up (the caller puts the rest back into staging).
        """
        claimed = {
            i.basename: i
            for i in self.store.list(layout.batch(intent.table, intent.batch_id))
        }
        bad = self._find_bad(intent, result, claimed)
        if bad:
            self._quarantine(bad, claimed, result.job_id)
            rest, why = intent.without(set(bad)), f"{len(bad)} shards quarantined"
        elif len(intent.shards) > 1 and self.extra_jobs < self.max_jobs:
            back = self._split(intent, claimed)
            rest, why = intent.without(back), f"split; {len(back)} shards put back"
        else:
            return None
        if not rest.shards:
            return rest
        if self.extra_jobs >= self.max_jobs:
            logger.warning(
                "table %s: batch %s: no isolation jobs left this tick",
                intent.table,
                intent.batch_id,
            )
            return None
        self.extra_jobs += 1
        return rest.next_attempt(f"failed on data ({result.error_reason}); {why}")

    def _find_bad(
        self, intent: Intent, result: JobResult, claimed: dict[str, ObjectInfo]
    ) -> dict[str, str]:
        checker = ShardChecker(self.table, self.fields)
        named = named_shards(result, claimed)
        if not named and len(claimed) == 1 and self.proven():
            named = {name: result.error_message or "load failed" for name in claimed}
        if named:
            return {n: self._explain(checker, claimed[n], m) for n, m in named.items()}
        if self._checked or len(claimed) == 1:
            return {}
        self._checked = True
        return checker.bad_shards(self.store, claimed.values())

    def _explain(self, checker: ShardChecker, info: ObjectInfo, message: str) -> str:
        """The job's message, and the field at fault when a local check names it."""
        problem = checker.problem(self.store, info)
        return f"{message}; checked locally: {problem}" if problem else message

    def _quarantine(
        self, bad: dict[str, str], claimed: dict[str, ObjectInfo], job_id: str
    ) -> None:
        for name, error in sorted(bad.items()):
            quarantine_shard(
                self.store, claimed[name], error=error, job_id=job_id, now=self.clock()
            )
        self.quarantined += len(bad)

    def _split(self, intent: Intent, claimed: dict[str, ObjectInfo]) -> set[str]:
        _, back = split_batch(sorted(claimed))
        staging = layout.staging(intent.table)
        for name in back:
            self.store.move(claimed[name], staging + name)
        self.returned += len(back)
        logger.warning(
            "table %s: batch %s: no shard named as bad; loading %d alone, %d back"
            " to staging",
            intent.table,
            intent.batch_id,
            len(claimed) - len(back),
            len(back),
        )
        return set(back)
