"""Structured (JSON) logs, one object per line, for kopf's records and ours alike."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from modelreg.domain.redaction import redact

# Fields kopf and we attach through `extra=`; anything else in a record stays out.
_EXTRAS = ("audit", "k8s_ref")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),  # a library's message may carry an endpoint URL
        }
        entry.update({key: getattr(record, key) for key in _EXTRAS if hasattr(record, key)})
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botocore logs request details (incl. headers) at DEBUG: keep it quiet whatever the level.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
