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


class ExpectedDenials(logging.Filter):
    """kopf logs every admission denial as an ERROR ("Webhook 'x' failed permanently: ..."): a
    denial is the webhook doing its job, so it is one INFO line, not an error to page anyone about."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and record.name.startswith("kopf"):
            message = record.getMessage()
            handler, found, denial = message.partition(" failed permanently: ")
            if found and handler.startswith("Webhook '"):
                record.levelno, record.levelname = logging.INFO, "INFO"
                record.msg, record.args = f"admission denied by {handler.removeprefix('Webhook ')}: {denial}", ()
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ExpectedDenials())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botocore logs request details (incl. headers) at DEBUG: keep it quiet whatever the level.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
