"""Where each kind of object lives under the store's prefix, per table.

<table>/staging/<shard>                  written by stagers, nothing else
<table>/intents/<batch>.json             what a tick is about to do
<table>/batches/<batch>/<shard>          claimed shards; one job reads these
<table>/archive/<day>/<batch>/<shard>    loaded shards, by load day (UTC)
<table>/archive/<day>/<batch>.manifest.json
<table>/quarantine/<shard>               shards that failed on their data
<table>/quarantine/<shard>.error.json
<table>/replay/<key>/...                 a replay's temporary per-partition files
<table>/compact/<key>/...                a compaction's intermediate composes
<table>/lease.json                       which loader works on the table
<table>/pause.json                       the table ran out of quota; until when
"""

from __future__ import annotations

from datetime import datetime

INTENT_SUFFIX = ".json"
MANIFEST_SUFFIX = ".manifest.json"
ERROR_SUFFIX = ".error.json"


def staging(table: str) -> str:
    """Prefix of the table's staged shards."""
    return f"{table}/staging/"


def intents(table: str) -> str:
    """Prefix of the table's open intents."""
    return f"{table}/intents/"


def intent(table: str, batch_id: str) -> str:
    """The intent object of one batch."""
    return f"{table}/intents/{batch_id}{INTENT_SUFFIX}"


def batch(table: str, batch_id: str) -> str:
    """Prefix of one batch's claimed shards (the load job's wildcard)."""
    return f"{table}/batches/{batch_id}/"


def batches(table: str) -> str:
    """Prefix of every batch folder of the table."""
    return f"{table}/batches/"


def archive(table: str) -> str:
    """Prefix of the table's whole archive."""
    return f"{table}/archive/"


def archive_day(table: str, day: str) -> str:
    """Prefix of one archive day (`YYYY-MM-DD`)."""
    return f"{table}/archive/{day}/"


def archived_batch(table: str, day: str, batch_id: str) -> str:
    """Prefix of one archived batch's shards."""
    return f"{table}/archive/{day}/{batch_id}/"


def manifest(table: str, day: str, batch_id: str) -> str:
    """The manifest object of one archived batch."""
    return f"{table}/archive/{day}/{batch_id}{MANIFEST_SUFFIX}"


def quarantine(table: str) -> str:
    """Prefix of the table's quarantined shards and their error notes."""
    return f"{table}/quarantine/"


def replay(table: str, key: str) -> str:
    """Prefix of one replay's temporary files."""
    return f"{table}/replay/{key}/"


def compact(table: str, key: str) -> str:
    """Prefix of one compaction's intermediate objects."""
    return f"{table}/compact/{key}/"


def lease(table: str) -> str:
    """The table's lease object."""
    return f"{table}/lease.json"


def pause(table: str) -> str:
    """The table's pause note, written when BigQuery answered quotaExceeded."""
    return f"{table}/pause.json"


def day_of(moment: datetime) -> str:
    """The archive day of a moment, `YYYY-MM-DD` in UTC."""
    return f"{moment:%Y-%m-%d}"


def basename(name: str) -> str:
    """The last component of an object name."""
    return name.rsplit("/", 1)[-1]
