"""Python's `logging` into the host's log pipeline (`log.log`), so a
collector logs as CloudForet plugins do:

    _LOGGER = logging.getLogger(__name__)
    _LOGGER.info("listed vms", extra={"fields": {"count": 12}})

The host tags every line with tenant, plugin and run, redacts secrets and
caps the volume. `extra={"fields": {...}}` become structured fields.
"""

import logging

from . import _host

_LEVELS = ((logging.ERROR, "error"), (logging.WARNING, "warn"), (logging.INFO, "info"), (logging.DEBUG, "debug"))


class HostLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((name for no, name in _LEVELS if record.levelno >= no), "trace")
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message = f"{message}: {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            fields = [("logger", record.name)]
            extra = getattr(record, "fields", None)
            if isinstance(extra, dict):
                fields.extend((str(k), str(v)) for k, v in extra.items())
            _host.current().log(level, message, fields)
        except Exception:  # a log line must never fail the collection
            pass


def install(level=logging.INFO) -> None:
    """Routes the root logger to the host (once)."""
    root = logging.getLogger()
    if not any(isinstance(h, HostLogHandler) for h in root.handlers):
        root.addHandler(HostLogHandler())
    root.setLevel(level)
