"""The Celery app: ``celery -A worker worker`` and ``celery -A worker beat`` find it here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

# Before anything that counts is imported: prometheus_client reads its folder once, at import.
from worker import metricsdir

METRICS_FOLDER = metricsdir.prepare()

from celery import Celery  # noqa: E402
from celery.signals import (  # noqa: E402
    after_setup_logger,
    after_setup_task_logger,
    beat_init,
    celeryd_after_setup,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

from worker import logformat, metrics, runtime  # noqa: E402
from worker.errors import SettingsError  # noqa: E402
from worker.settings import log_format_from_env, metrics_port_from_env  # noqa: E402

app = Celery("livestreams", include=["worker.tasks"])
app.config_from_object("worker.celeryconfig")

# Tasks whose routine runs Celery should not log: the dispatch tick runs every second on every
# beat, and its own line (worker.dispatch) says when a tick claimed, reaped or missed anything;
# status checks and webhook deliveries come by the hundred, and their own lines say what changed
# (worker.follow.flow, worker.notify.sender). A start's lines are kept: there is one a booking.
QUIET_TASKS = frozenset(
    {"livestreams.dispatch_due", "livestreams.track_stream", "livestreams.deliver_webhook"}
)


class QuietRoutineTasks(logging.Filter):
    """Moves Celery's INFO lines about sending, receiving and finishing :data:`QUIET_TASKS` to
    DEBUG: gone at `--loglevel INFO`, there at `--loglevel DEBUG`. Their failures and retries
    (WARNING and above) are left alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _routine(record.args):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _routine(args: object) -> bool:
    if isinstance(args, Mapping):  # worker: "Task %(name)s[%(id)s] received / succeeded"
        name = args.get("name")
        return isinstance(name, str) and name in QUIET_TASKS
    # beat: "Scheduler: Sending due task %s (%s)", entry name and task name
    return isinstance(args, tuple) and any(isinstance(a, str) and a in QUIET_TASKS for a in args)


for _name in ("celery.worker.strategy", "celery.app.trace", "celery.beat"):
    logging.getLogger(_name).addFilter(QuietRoutineTasks())
# httpx logs every request at INFO; the client logs each call itself (worker.upstream.realtimekit).
logging.getLogger("httpx").setLevel(logging.WARNING)


# A worker without an API token or a usable stream-key key refuses to start.
worker_init.connect(runtime.refuse_to_start, weak=False)
# A prefork child must not reuse the parent's pooled database connections or HTTP sockets.
worker_process_init.connect(runtime.init_process, weak=False)
worker_process_shutdown.connect(runtime.shutdown_process, weak=False)
# What the ops page's processes say: each worker's lane, what it runs now, and beat's own row.
celeryd_after_setup.connect(runtime.note_lane, weak=False)
task_prerun.connect(runtime.task_began, weak=False)
task_postrun.connect(runtime.task_ended, weak=False)
beat_init.connect(runtime.beat_started, weak=False)


def _json_logs(logger: logging.Logger, **_: object) -> None:
    """LIVESTREAMS_LOG_FORMAT=json: Celery's handlers (worker, beat, their task loggers) write
    one JSON object per line. A bad value leaves text here; worker_init then refuses to start
    with the variable named."""
    try:
        wanted = log_format_from_env()
    except SettingsError:
        return
    if wanted == logformat.JSON:
        logformat.use_json(logger.handlers)


after_setup_logger.connect(_json_logs, weak=False)
after_setup_task_logger.connect(_json_logs, weak=False)


def _serve_metrics(**_: object) -> None:
    """In the worker's main process, once: serve every process's metrics on the port."""
    port = metrics_port_from_env()
    if port is not None and METRICS_FOLDER is not None:
        metrics.serve(port, METRICS_FOLDER)


def _child_exited(**_: object) -> None:
    metrics.process_exited(os.getpid())


# After refuse_to_start (connected above): a worker that refuses never opens the port.
worker_init.connect(_serve_metrics, weak=False)
worker_process_shutdown.connect(_child_exited, weak=False)
