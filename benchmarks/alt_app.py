"""The usual alternative: sqlalchemy-celery-beat, one one-off clocked entry per booking.

``celery -A benchmarks.alt_app beat -S sqlalchemy_celery_beat.schedulers:DatabaseScheduler``
sends ``bench.alt_start`` at each entry's instant; ``celery -A benchmarks.alt_app worker`` runs
it. Same broker and Celery settings as the product (``worker.celeryconfig``), same HTTP client
(one per process, from the product's runtime). The task only calls the API: no claim, no
attempt row, no result stored, which favours it.
"""

from __future__ import annotations

from celery import Celery

from benchmarks.services import ALT_TASK
from worker import runtime
from worker.settings import Settings

settings = Settings.from_env()
app = Celery("bench-alt")
app.config_from_object("worker.celeryconfig")
app.conf.beat_schedule = {}  # the product's dispatch tick has no place here
app.conf.beat_dburi = settings.database_url


@app.task(name=ALT_TASK, ignore_result=True)
def alt_start(meeting_id: str, name: str, width: int, height: int) -> str:
    """Start the meeting's livestream, the way a user of a one-off scheduler would."""
    assert settings.upstream.account_id is not None and settings.upstream.app_id is not None
    stream = runtime.current().client.start_livestream(
        settings.upstream.account_id,
        settings.upstream.app_id,
        meeting_id,
        name=name,
        width=width,
        height=height,
    )
    return stream.id
