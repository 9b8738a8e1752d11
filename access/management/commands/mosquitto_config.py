"""Write Mosquitto's password and ACL files from the database.

One login per controller (user name = controller id, password hash kept on the Controller by
`set_mqtt_password`), one for the backend (from MQTT_URL). The ACL confines each controller to
its own `ctrl/{id}/` subtree with `%u` patterns. Send Mosquitto a SIGHUP (or restart it) after
writing, so that it reloads both files.
"""

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from access.models import Controller, mosquitto_hash
from access.mqtt import broker_from_url
from access.power import tasmota_prefix

# What a controller may do, under {root}/ctrl/%u/: publish what it reports, read what it is
# sent. Nothing else: no other controller's subtree, no wildcard publish.
CONTROLLER_RULES = [
    ("write", "ctrl/%u/status"),
    ("write", "ctrl/%u/hb"),
    ("write", "ctrl/%u/log"),
    ("read", "ctrl/%u/acl/push"),
    ("write", "ctrl/%u/acl/ack"),
    ("write", "ctrl/%u/door/+/scan"),
    ("read", "ctrl/%u/door/+/decision"),
    ("write", "ctrl/%u/door/+/event"),
    ("read", "ctrl/%u/door/+/cmd"),
    ("write", "ctrl/%u/door/+/cmd/ack"),
    ("read", "ctrl/%u/door/+/desired"),
    ("write", "ctrl/%u/eq/+/scan"),
    ("read", "ctrl/%u/eq/+/decision"),
    ("read", "ctrl/%u/eq/+/cmd"),
    ("write", "ctrl/%u/eq/+/state"),
]
# Read by every controller. Written per user: Mosquitto warns about patterns without %u.
SHARED_READ = ["site/mode", "sys/backend/status"]
# A Tasmota relay enrolled as a controller whose id is its Tasmota topic.
TASMOTA_RULES = [("read", "cmnd/%u/#"), ("write", "stat/%u/#"), ("write", "tele/%u/#")]
BACKEND_TOPICS = ["{root}/#", "{tasmota}cmnd/#", "{tasmota}stat/#", "{tasmota}tele/#"]


def acl_text(root: str, backend_user: str, controller_ids: list[str], tasmota: str = "") -> str:
    """`tasmota`: the relays' topic prefix (settings.TASMOTA_PREFIX, normalised), "" or "x/"."""
    root = root.rstrip("/")
    lines = [
        "# Mosquitto ACL for Technocampus, written by `manage.py mosquitto_config`.",
        "# Do not edit: regenerate it. Anything not allowed here is refused.",
        "",
        "# Every login, %u being its user name: a controller reaches only its own subtree.",
        *(f"pattern {access} {root}/{t}" for access, t in CONTROLLER_RULES),
        "# Tasmota relays, enrolled with their Tasmota topic as controller id.",
        *(f"pattern {access} {tasmota}{t}" for access, t in TASMOTA_RULES),
        "",
        "# The backend (the MQTT bridge): the whole tree and the Tasmota relays.",
        f"user {backend_user}",
        *(f"topic readwrite {t.format(root=root, tasmota=tasmota)}" for t in BACKEND_TOPICS),
        "",
        "# Each controller also reads the site mode and the backend's presence.",
    ]
    for controller_id in controller_ids:
        lines += [f"user {controller_id}", *(f"topic read {root}/{t}" for t in SHARED_READ)]
    lines.append("")
    return "\n".join(lines)


def password_text(backend_user: str, backend_password: str, controllers) -> str:
    lines = [f"{backend_user}:{mosquitto_hash(backend_password)}"]
    lines += [f"{c.id}:{c.mqtt_password_hash}" for c in controllers]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str, mode: int):
    # Mosquitto may reload at any moment (SIGHUP): it must read the old file or the new one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = "Write Mosquitto's password file and ACL file (passwd, acl) from the database."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="directory to write passwd and acl into")
        parser.add_argument(
            "--mode",
            default="640",
            help="octal file mode of both files (default 640); the broker must be able to "
            "read them",
        )

    def handle(self, *args, out, mode, **options):
        try:
            broker = broker_from_url(settings.MQTT_URL)
        except ValueError as e:
            raise CommandError(f"MQTT_URL: {e}") from None
        if not broker.username or not broker.password:
            raise CommandError("MQTT_URL must carry the backend's login: mqtt://user:pw@host")
        try:
            file_mode = int(mode, 8)
        except ValueError:
            raise CommandError(f"--mode must be octal, like 640, not {mode!r}") from None

        controllers = list(Controller.objects.filter(is_active=True).order_by("id"))
        if any(c.id == broker.username for c in controllers):
            raise CommandError(f"controller id {broker.username!r} is the backend's login")
        without = [c.id for c in controllers if not c.mqtt_password_hash]
        for controller_id in without:
            self.stderr.write(
                f"controller {controller_id} has no MQTT password yet (admin: new MQTT "
                "password); left out"
            )
        controllers = [c for c in controllers if c.mqtt_password_hash]

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(
            folder / "passwd",
            password_text(broker.username, broker.password, controllers),
            file_mode,
        )
        write_atomically(
            folder / "acl",
            acl_text(
                settings.MQTT_ROOT,
                broker.username,
                [c.id for c in controllers],
                tasmota_prefix(),
            ),
            file_mode,
        )
        self.stdout.write(
            f"{timezone.now():%Y-%m-%d %H:%M:%S} wrote {folder / 'passwd'} "
            f"({len(controllers)} controllers + {broker.username}) and {folder / 'acl'}; "
            "send Mosquitto a SIGHUP to reload them."
        )
