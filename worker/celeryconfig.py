"""Celery settings: declarative, with every value taken from worker.settings.

Loaded by worker/celery.py with ``app.config_from_object("worker.celeryconfig")``. It lives in
the package, not beside it, so an installed wheel has it, and so a ``celeryconfig.py`` in the
directory a worker is started from (``celery`` puts the current directory first on sys.path)
is never read in its place.
"""

from kombu import Queue

from worker.errors import SettingsError, exit_refusing
from worker.settings import Settings

try:
    _settings = Settings.from_env()
except SettingsError as exc:
    # Read as Celery loads its app, before any signal: a bad setting (a database URL the
    # product cannot use, ...) stops worker and beat here, in one line instead of a traceback.
    exit_refusing(exc)

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
# JSON only: a task carries (stream_id, claim_token), never an object or a secret.
task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# Lanes (docs/DESIGN.md, "Lanes"): one queue per kind of work, so that a worker can be given
# the start lane alone (`-Q livestreams.start`, see the Procfile). A worker started plainly
# consumes every queue below. Starts leave as launches, ahead of their instants, and are sent
# from each process's launch thread: follow-up work in the pool never stands in front of one.
START_QUEUE, FOLLOW_QUEUE = "livestreams.start", "livestreams.follow"
NOTIFY_QUEUE, DISPATCH_QUEUE = "livestreams.notify", "livestreams.dispatch"
# "celery", Celery's own default, holds what a version before the lanes queued (and what a
# bare client sends): a plain worker still consumes it, so an upgrade loses no message.
LEGACY_QUEUE = "celery"
task_queues = [
    Queue(name) for name in (START_QUEUE, FOLLOW_QUEUE, NOTIFY_QUEUE, DISPATCH_QUEUE, LEGACY_QUEUE)
]
task_default_queue = FOLLOW_QUEUE
task_routes = {
    "livestreams.launch": {"queue": START_QUEUE},
    "livestreams.start_stream": {"queue": START_QUEUE},
    "livestreams.track_stream": {"queue": FOLLOW_QUEUE},
    "livestreams.deliver_webhook": {"queue": NOTIFY_QUEUE},
    "livestreams.prune_webhooks": {"queue": NOTIFY_QUEUE},
    # Series occurrences are booked days ahead: nothing about them is due at an instant, and
    # on the dispatch lane a maker booking a month of a thousand series would stand in front
    # of the every-second tick. The follow lane runs on the same workers in every layout.
    "livestreams.make_occurrences": {"queue": FOLLOW_QUEUE},
    "livestreams.dispatch_due": {"queue": DISPATCH_QUEUE},
}

# The database holds every result; a result backend would only store copies.
task_ignore_result = True
task_store_errors_even_if_ignored = False

# Acknowledge after the task ran, so a message lost with its worker is delivered again. That
# replay is harmless: the claim token makes a second run of the same claim a no-op, and the
# database lease, not the broker, decides when a vanished start is taken back.
task_acks_late = True
task_reject_on_worker_lost = False

# Start tasks are short and wait on the network; a few in hand per process keeps the pool busy
# without hoarding work a crashed process would then sit on. ETA tasks do not count here.
worker_prefetch_multiplier = 4

# Redis re-delivers an unacknowledged message after this many seconds. It must exceed the
# longest ETA we give (the lookahead) plus a task's run time, or a message waiting for its ETA
# would be handed to a second worker; 5 minutes leaves a wide margin over the defaults.
# (Redis only: the SQLAlchemy transport of the embedded demo passes options to create_engine.)
_redis = broker_url.startswith(("redis://", "rediss://", "redis+socket://"))
broker_transport_options = {"visibility_timeout": 300} if _redis else {}

# LIVESTREAMS_TASK_EVENTS=1: workers send task events (and a "sent" event per task), which
# Flower and celery-exporter read; off by default, as in Celery.
worker_send_task_events = _settings.task_events
task_send_sent_event = _settings.task_events

# A start task makes at most three calls (reconcile, start, key fetch), each bounded and each
# renewing its lease; this only stops a wedged task.
task_time_limit = int(3 * _settings.claims.lease)

# A tick that waited in the queue longer than this is stale: the next one replaces it. Beat
# stamps the expiry with its own clock and a worker reads it with its own, so the margin must
# dwarf any clock skew between hosts (with 5 s, a worker 5 s ahead of beat dropped every
# tick), while still keeping a stopped worker from finding hours of ticks queued.
DISPATCH_EXPIRES = max(60.0, 10 * _settings.claims.dispatch_interval)

beat_schedule = {
    "dispatch-due": {
        "task": "livestreams.dispatch_due",
        "schedule": _settings.claims.dispatch_interval,
        "options": {"expires": DISPATCH_EXPIRES},
    },
    # The outbound webhook log past its retention (worker.notify.retention); a run missed while no
    # worker was up is simply done by the next.
    # Every active series' occurrences booked up to the horizon (worker.series.flow.make_all);
    # extra beats or a missed run cost a query, never a second booking.
    "make-occurrences": {
        "task": "livestreams.make_occurrences",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
    "prune-webhooks": {
        "task": "livestreams.prune_webhooks",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}
