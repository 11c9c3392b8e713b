"""Benchmark results: the record schema and the append-only JSONL store."""
from edgekd.results.schema import RECORD_KEYS, SCHEMA_VERSION, make_record, validate_record
from edgekd.results.store import ResultStore, completed_keys, latest_by_key, new_run_id, read_records

__all__ = [
    "RECORD_KEYS", "SCHEMA_VERSION", "make_record", "validate_record",
    "ResultStore", "completed_keys", "latest_by_key", "new_run_id", "read_records",
]
