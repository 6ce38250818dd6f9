"""Logging of the webhook sweep: beat starts one every WEBHOOK_SWEEP_SECONDS, and most find nothing due."""

import logging

SWEEP_TASK = "webhooks.deliver_due"


class IdleSweepFilter(logging.Filter):
    """Drops the worker's "Task webhooks.deliver_due[...] received" lines, and its "succeeded in ...: 0" lines (a
    sweep that posted nothing), which would otherwise be two lines every WEBHOOK_SWEEP_SECONDS. A sweep that posted
    logs its outcome line as any task does, and each of its attempts (apps/webhooks/services.py).

    Celery passes the task's name and result in the record's `data` (celery.app.trace, celery.worker.strategy).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if not isinstance(data, dict) or data.get("name") != SWEEP_TASK:
            return True
        if "return_value" in data and "runtime" in data:  # "succeeded in": the number of attempts made
            return str(data["return_value"]) != "0"
        return not str(record.msg).endswith("received")  # failures, retries and the like are kept
