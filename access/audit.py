"""The bridge's audit writer: every database write of a bridge worker off the decision path,
in one thread and in order.

Audit rows are batched: the thread wakes at the first row and takes everything queued within
`delay` of it, in inserts of at most MAX_BATCH rows. Then the queued calls run (presence
updates, check-ins by badge, MQTT acknowledgements), in the order they were queued: a call
queued after an audit row runs once that row is committed, which is how a scan is
acknowledged to the broker only once its decision is in the log (access.bridge). While the
database is away it retries with backoff; on stop it writes what it holds.
"""

import logging
import queue
import threading
import time

from django.db import Error as DatabaseError
from django.db import IntegrityError, InterfaceError, OperationalError, connection

from access.models import AuditEvent

log = logging.getLogger(__name__)


class Writer:
    """The writer thread of one bridge worker (see the module docstring)."""

    MAX_BATCH = 500
    STOP = object()

    def __init__(self, delay: float):
        self.delay = delay
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="bridge-writer", daemon=True)
        self.stopping = threading.Event()

    def start(self):
        self.thread.start()

    def audit(self, event: AuditEvent | dict):
        self.queue.put(("audit", event))

    def call(self, fn, *args):
        """`fn(*args)` in the writer thread, after every audit row queued before it."""
        self.queue.put(("call", fn, args))

    def stop(self, timeout: float = 10.0):
        self.stopping.set()
        self.queue.put(self.STOP)
        self.thread.join(timeout)

    def _run(self):
        stopping = False
        try:
            while not stopping:
                items = [self.queue.get()]
                if items[0] is not self.STOP:
                    # What comes within `delay` of the first item is taken at once: the thread
                    # wakes once per batch, not once per row (a wake-up costs more than a row).
                    self.stopping.wait(self.delay)
                while True:
                    try:
                        items.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                batch, calls = [], []
                for item in items:
                    if item is self.STOP:
                        stopping = True
                    elif item[0] == "audit":
                        batch.append(item[1])
                    else:
                        calls.append(item[1:])
                for start in range(0, len(batch), self.MAX_BATCH):
                    self._write(batch[start : start + self.MAX_BATCH], [], patient=not stopping)
                self._write([], calls, patient=not stopping)
        finally:
            connection.close()

    def _write(self, batch, calls, *, patient: bool):
        delay = 0.2
        for attempt in range(1000 if patient else 3):
            try:
                if batch:
                    record(batch)
                    batch = []
                while calls:
                    fn, args = calls[0]
                    try:
                        fn(*args)
                    except (OperationalError, InterfaceError):
                        raise
                    except Exception:  # one bad update must not stop the others
                        log.exception("dropped a database update (%s)", fn.__name__)
                    calls.pop(0)
                return
            except (OperationalError, InterfaceError):
                log.exception("database unavailable while writing (attempt %d)", attempt + 1)
                connection.close()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.error("gave up writing %d audit rows and %d updates", len(batch), len(calls))


def record(batch: list[AuditEvent | dict]):
    """Insert audit rows (AuditEvents, or dicts of their fields); repeats of a logged
    (controller, req_id) or (controller, seq) are skipped by the unique constraints. A row that
    cannot be stored (a badge deleted meanwhile, a value out of range) is dealt with alone
    rather than failing its whole batch."""
    try:
        AuditEvent.objects.record(batch)
        return
    except (OperationalError, InterfaceError):
        raise
    except (DatabaseError, ValueError, OverflowError, TypeError):
        pass
    for event in batch:
        try:
            AuditEvent.objects.record([event])
        except IntegrityError:
            if isinstance(event, dict):
                event = {**event, "credential_id": None, "person_id": None}
            else:
                event.credential_id = event.person_id = None
            AuditEvent.objects.record([event])
        except (OperationalError, InterfaceError):
            raise
        except (DatabaseError, ValueError, OverflowError, TypeError):
            shown = event if isinstance(event, dict) else event.__dict__
            log.exception("dropped an audit row that cannot be stored: %s", shown)
