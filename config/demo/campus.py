"""The demo Technocampus: one building on three levels, 40 tenants, 300 people.

Everything is keyed on natural keys (codes, names, e-mails) and drawn from a seeded random
generator, so that running it again changes nothing. Other apps add their part of the demo
(policies, equipment, doors…) in their own `demo.py`, called after this one.
"""

import random
from datetime import date
from decimal import Decimal

from django.contrib.auth.hashers import make_password

from campus.clock import default_zone_name
from campus.models import Building, Feature, Floor, Lease, Person, Site, Space, Tenant

DEMO_PASSWORD = "technocampus"
DEMO_DOMAIN = "technocampus.demo"

FEATURES = {
    "projector": "Vidéoprojecteur / Projector",
    "video-conference": "Visioconférence / Video conference",
    "whiteboard": "Tableau blanc / Whiteboard",
    "esd-floor": "Sol ESD / ESD floor",
    "compressed-air": "Air comprimé / Compressed air",
    "power-400v": "Alimentation 400 V / 400 V power",
    "fume-extraction": "Aspiration des fumées / Fume extraction",
    "network-10g": "Réseau 10 Gbit/s / 10 Gbit/s network",
}

# (number, name, kind, capacity, area m², features, bookable) on the ground floor.
GROUND_FLOOR = [
    (1, "Accueil", "common", 0, 180, [], False),
    (2, "Auditorium", "auditorium", 150, 260, ["projector", "video-conference"], True),
    (3, "Salle Loire", "meeting_room", 12, 35, ["projector", "whiteboard"], True),
    (
        4,
        "Salle Maine",
        "meeting_room",
        20,
        50,
        ["projector", "video-conference", "whiteboard"],
        True,
    ),
    (10, "Laboratoire CEM", "lab", 6, 320, ["esd-floor", "power-400v"], True),
    (
        11,
        "Laboratoire climatique",
        "lab",
        4,
        180,
        ["esd-floor", "power-400v", "compressed-air"],
        True,
    ),
    (12, "Rayons X et AOI", "lab", 4, 120, ["esd-floor"], True),
    (
        13,
        "Ligne CMS",
        "lab",
        8,
        400,
        ["esd-floor", "compressed-air", "power-400v", "fume-extraction"],
        True,
    ),
    (14, "Prototypage et impression 3D", "lab", 8, 140, ["fume-extraction"], True),
    (15, "Mesure et instrumentation", "lab", 10, 150, ["esd-floor", "network-10g"], True),
    (16, "Radiofréquence", "lab", 6, 120, ["esd-floor"], True),
    (17, "Fiabilité et chocs thermiques", "lab", 4, 160, ["power-400v", "compressed-air"], True),
    (20, "Atelier mécanique", "workshop", 6, 120, ["compressed-air", "power-400v"], False),
    (30, "Local technique TGBT", "technical", 0, 40, [], False),
    (31, "Salle serveurs", "technical", 0, 30, ["network-10g"], False),
    (40, "Cafétéria", "common", 80, 200, [], False),
]

MEETING_ROOMS_UPSTAIRS = {
    1: ["Salle Sarthe", "Salle Mayenne", "Salle Authion", "Salle Layon", "Salle Oudon"],
    2: ["Salle Thouet", "Salle Erdre", "Salle Sèvre", "Salle Vienne", "Salle Indre"],
}

COMPANY_STEMS = [
    "Altronic",
    "Anjou Capteurs",
    "Boréal Systems",
    "CapSense",
    "Circuitek",
    "Dielec",
    "ElecProto",
    "Électroniques de l'Ouest",
    "Ferrite & Co",
    "Gallium Design",
    "Hertzline",
    "IoTerra",
    "Jouleo",
    "Kelvin Labs",
    "Lumisens",
    "Maine Embedded",
    "Nanovolt",
    "Ohmega",
    "Photonix",
    "Quartz Engineering",
    "Radiolink",
    "Sensoria",
    "Solderix",
    "Tesla Loire",
    "Transistance",
    "Ultrawave",
    "Véga Microsystèmes",
    "Wattson",
    "Xenon Power",
    "Yotta IoT",
    "Zener Conseil",
    "Ampère Angers",
    "Bitronics",
    "Cobalt RF",
    "Diodea",
    "Énergie Embarquée",
    "Fluxgate",
    "Gyrolab",
    "Hélios Capteurs",
    "Inductiva",
]
FIRST_NAMES = [
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Emma",
    "Inès",
    "Sarah",
    "Julie",
    "Laura",
    "Clara",
    "Lucas",
    "Hugo",
    "Louis",
    "Nathan",
    "Thomas",
    "Maxime",
    "Antoine",
    "Julien",
    "Nicolas",
    "Paul",
    "Alexandre",
    "Mathilde",
    "Pauline",
    "Élise",
    "Karim",
    "Yanis",
    "Mehdi",
    "Sofia",
    "Amélie",
    "Quentin",
    "Romain",
    "Aurélie",
    "Baptiste",
    "Céline",
    "Damien",
    "Fanny",
]
LAST_NAMES = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guérin",
    "Muller",
    "Henry",
    "Roussel",
    "Nicolas",
    "Perrin",
    "Morin",
    "Mathieu",
    "Clément",
    "Gauthier",
]

STAFF = [
    # (local part, first, last, facility staff, lab technician, superuser)
    ("admin", "Administrateur", "Technocampus", True, False, True),
    ("accueil", "Sophie", "Ménard", True, False, False),
    ("securite", "Marc", "Lebrun", True, False, False),
    ("exploitation", "Nadia", "Cherif", True, False, False),
    ("facturation", "Olivier", "Pasquier", True, False, False),
    ("direction", "Hélène", "Castel", True, False, False),
    ("labo", "Julien", "Carré", False, True, False),
    ("cem", "Anaïs", "Vidal", False, True, False),
    ("cms", "Thierry", "Boucher", False, True, False),
]
TENANT_COUNT = 40
PEOPLE_COUNT = 300


def email_for(first: str, last: str, company: str) -> str:
    def slug(text):
        table = str.maketrans("àâäéèêëîïôöùûüç'&", "aaaeeeeiioouuuc--")
        return "".join(c for c in text.lower().translate(table) if c.isalnum() or c in ".-")

    return f"{slug(first)}.{slug(last)}@{slug(company.replace(' ', '-'))}.{DEMO_DOMAIN}"


def build() -> dict:
    """Create or update the demo campus; returns the demo logins to print."""
    rng = random.Random(2026)  # noqa: S311 - demo data, not secrets
    site, _ = Site.objects.update_or_create(
        slug="angers",
        defaults={
            "name": "Technocampus Électronique & IoT",
            "address": "Angers, France",
            "time_zone": default_zone_name(),
        },
    )
    building, _ = Building.objects.update_or_create(
        site=site, code="B", defaults={"name": "Bâtiment principal", "area_m2": Decimal("8500")}
    )
    floors = {}
    for level, name in [(0, "Rez-de-chaussée"), (1, "1er étage"), (2, "2e étage")]:
        floors[level], _ = Floor.objects.update_or_create(
            building=building, level=level, defaults={"name": name}
        )
    features = {}
    for code, name in FEATURES.items():
        features[code], _ = Feature.objects.update_or_create(code=code, defaults={"name": name})

    def space(level, number, name, kind, capacity, area, feature_codes, bookable):
        obj, _ = Space.objects.update_or_create(
            code=f"B-{level}.{number:02d}",
            defaults={
                "floor": floors[level],
                "name": name,
                "kind": kind,
                "capacity": capacity,
                "area_m2": Decimal(area),
                "bookable": bookable,
                "is_active": True,
            },
        )
        obj.features.set([features[c] for c in feature_codes])
        return obj

    for row in GROUND_FLOOR:
        space(0, *row)
    offices = []
    for level in (1, 2):
        for i, name in enumerate(MEETING_ROOMS_UPSTAIRS[level]):
            extra = ["video-conference"] if i % 2 == 0 else []
            space(
                level,
                50 + i,
                name,
                "meeting_room",
                [6, 8, 10, 12, 16][i],
                20 + 5 * i,
                ["projector", "whiteboard", *extra],
                True,
            )
        for number in range(1, 31):
            area = rng.choice([18, 22, 25, 30, 36, 45, 60])
            offices.append(
                space(
                    level,
                    number,
                    f"Bureau {level}.{number:02d}",
                    "office",
                    max(2, area // 8),
                    area,
                    ["network-10g"] if number % 5 == 0 else [],
                    False,
                )
            )
        for number in range(60, 64):
            space(level, number, f"Poste coworking {level}.{number}", "desk", 1, 6, [], True)

    tenants = []
    for i, name in enumerate(COMPANY_STEMS[:TENANT_COUNT]):
        start = date(2022 + i % 4, 1 + (i * 5) % 12, 1)
        tenant, _ = Tenant.objects.update_or_create(
            name=name,
            defaults={
                "tier": Tenant.Tier.MEMBER if i % 3 else Tenant.Tier.NON_MEMBER,
                "status": Tenant.Status.ACTIVE,
                "contract_start": start,
                "contract_end": None,
                "contact_email": email_for("contact", "", name).replace("contact.@", "contact@"),
            },
        )
        tenants.append(tenant)

    # The first 34 tenants lease one office each, the first 20 a second one: 54 of 60 let.
    office_iter = iter(offices)
    for i, tenant in enumerate(tenants):
        for _n in range(2 if i < 20 else (1 if i < 34 else 0)):
            office = next(office_iter)
            Lease.objects.update_or_create(
                space=office,
                start=tenant.contract_start,
                defaults={"tenant": tenant, "end": None},
            )

    password = make_password(DEMO_PASSWORD)
    logins = {}

    def person(
        email,
        first,
        last,
        *,
        tenant=None,
        tenant_admin=False,
        staff=False,
        technician=False,
        superuser=False,
        login=False,
    ):
        obj, _ = Person.objects.update_or_create(
            email=email,
            defaults={
                "first_name": first,
                "last_name": last,
                "tenant": tenant,
                "is_tenant_admin": tenant_admin,
                "is_facility_staff": staff,
                "is_lab_technician": technician,
                "is_superuser": superuser,
                "is_active": True,
            },
        )
        if login and (not obj.password or not obj.has_usable_password()):
            obj.password = password
            obj.save(update_fields=["password"])
        elif not login and obj.password == "":
            obj.set_unusable_password()
            obj.save(update_fields=["password"])
        return obj

    for local, first, last, staff, technician, superuser in STAFF:
        p = person(
            f"{local}@{DEMO_DOMAIN}",
            first,
            last,
            staff=staff,
            technician=technician,
            superuser=superuser,
            login=local in ("admin", "accueil", "labo"),
        )
        if local in ("admin", "accueil", "labo"):
            logins[p.email] = ", ".join(p.roles)

    remaining = PEOPLE_COUNT - len(STAFF)
    sizes = [1] * TENANT_COUNT
    weights = [1 / (i + 2) for i in range(TENANT_COUNT)]  # a few large tenants, many small
    for index in rng.choices(range(TENANT_COUNT), weights=weights, k=remaining - TENANT_COUNT):
        sizes[index] += 1
    used = set()
    for t_index, (tenant, size) in enumerate(zip(tenants, sizes, strict=True)):
        for n in range(size):
            first = FIRST_NAMES[(t_index * 7 + n * 3) % len(FIRST_NAMES)]
            last = LAST_NAMES[(t_index * 11 + n * 5) % len(LAST_NAMES)]
            email = email_for(first, last, tenant.name)
            if email in used:
                email = email.replace("@", f"{n}@")
            used.add(email)
            login = t_index == 0 and n < 2
            p = person(email, first, last, tenant=tenant, tenant_admin=n == 0, login=login)
            if login:
                logins[p.email] = ", ".join(p.roles)
    return logins
