"""Controller presence: birth and last will on `status`, heartbeats on `hb`, and the watch
for controllers gone silent (docs/mqtt.md, "Presence").

Each function here runs in the bridge's writer thread (access.audit) and is idempotent, so
that every worker may run it for the same message (retained statuses reach every worker): a
change of state is a conditional update, and only the worker whose update changed the row
logs it. Online and offline are `presence` lines in the audit log; going offline (a last
will, a goodbye, or MISSED_HEARTBEATS heartbeats missed) is also an alert in the log. The
`technocampus_controllers_online` gauge is counted again from the database after each change
and at each watch, so that every worker reports the same number.
"""

import logging
from datetime import datetime, timedelta

from django.db.models import Q

from access import protocol
from access.audit import record
from access.commands import OFFLINE_AFTER
from access.models import AuditEvent, Controller
from common.metrics import CONTROLLERS_ONLINE

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
MISSED_HEARTBEATS = 3


def count_online(now: datetime) -> int:
    """The controllers `access.commands.is_online` says are online, into the gauge."""
    online = Controller.objects.filter(
        is_active=True, online=True, last_seen__gte=now - OFFLINE_AFTER
    ).count()
    CONTROLLERS_ONLINE.set(online)
    return online


def alert(ctrl: str, why: str, now: datetime):
    log.warning("ALERT controller %s offline (%s)", ctrl, why)
    record(
        [
            AuditEvent(
                kind=AuditEvent.Kind.PRESENCE, ts=now, controller=ctrl, result="offline", reason=why
            )
        ]
    )


def set_presence(ctrl: str, status: protocol.Status, now: datetime):
    """Birth or last will. A change of state is logged (an alert when offline); a retained
    status read again at every bridge start changes nothing."""
    fields = {"online": status.online}
    if status.online:
        fields["last_seen"] = now
        if status.fw is not None:
            fields["firmware"] = status.fw[:64]
        if status.acl_ver is not None:
            fields["acl_version"] = status.acl_ver
    changed = Controller.objects.filter(pk=ctrl).exclude(online=status.online).update(**fields)
    if not changed:
        if not Controller.objects.filter(pk=ctrl).update(**fields):
            log.warning("status from unknown controller %s", ctrl)
        return
    if status.online:
        log.info("controller %s online (fw %s)", ctrl, status.fw)
        record(
            [
                AuditEvent(
                    kind=AuditEvent.Kind.PRESENCE,
                    ts=now,
                    controller=ctrl,
                    result="online",
                    reason="birth",
                    detail={"fw": status.fw} if status.fw else {},
                )
            ]
        )
    else:
        # The last will, or a clean goodbye: the same message, the same alert.
        alert(ctrl, "status_offline", now)
    count_online(now)


def record_heartbeat(ctrl: str, hb: protocol.Heartbeat, now: datetime):
    fields = {"last_seen": now, "last_heartbeat": now, "acl_version": hb.acl_ver}
    if Controller.objects.filter(pk=ctrl, online=False).update(online=True, **fields):
        record(
            [
                AuditEvent(
                    kind=AuditEvent.Kind.PRESENCE,
                    ts=now,
                    controller=ctrl,
                    result="online",
                    reason="heartbeat",
                )
            ]
        )
        count_online(now)
    elif not Controller.objects.filter(pk=ctrl).update(**fields):
        log.warning("heartbeat from unknown controller %s", ctrl)


def watch_heartbeats(now: datetime, period: float = HEARTBEAT_S):
    """An alert for each controller online without a heartbeat for MISSED_HEARTBEATS periods
    (idempotent: a conditional update, so that several workers raise it once)."""
    limit = now - timedelta(seconds=MISSED_HEARTBEATS * period)
    silent = Controller.objects.filter(online=True).filter(
        Q(last_heartbeat__lt=limit) | Q(last_heartbeat__isnull=True, last_seen__lt=limit)
    )
    for pk in list(silent.values_list("pk", flat=True)):
        if Controller.objects.filter(pk=pk, online=True).update(online=False):
            alert(pk, "missed_heartbeats", now)
    count_online(now)
