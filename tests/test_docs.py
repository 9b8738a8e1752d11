"""The documentation stays true to the code it describes and stays inside the repository.

Plain file reads: no database, no services. (docs/mqtt.md's examples are checked in
tests/access/test_protocol.py, docs/errors.md in tests/campus/test_api_errors.py.)
"""

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the repository's own files are, as git knows them (not .venv, var/, caches).
TEXT = (".py", ".md", ".html", ".txt", ".toml", ".yml", ".yaml", ".cfg", ".conf", ".example")


def tracked(*suffixes: str) -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    return [ROOT / n for n in names if n and n.endswith(suffixes) and (ROOT / n).is_file()]


# ---------------------------------------------------------------- configuration

# Read by the code but not to be set in a deployment's .env: the refused former proxy switch,
# the test database's name, and Django's own settings-module pointer.
NOT_FOR_ENV_FILE = {"USE_X_FORWARDED_FOR", "DB_TEST_NAME", "DJANGO_SETTINGS_MODULE"}
NOT_DOCUMENTED = {"DJANGO_SETTINGS_MODULE"}


def variables_read() -> set[str]:
    """Every environment variable the application, gunicorn and compose read."""
    found = set()
    settings = (ROOT / "config" / "settings.py").read_text()
    found |= set(
        re.findall(
            r"\b(?:env|envbool|envint|envlist|envnetworks|_required_secret)\(\s*\"([A-Z][A-Z0-9_]*)\"",
            settings,
        )
    )
    for path in [ROOT / "gunicorn.conf.py", *tracked(".py")]:
        if "tests" in path.relative_to(ROOT).parts or "bench" in path.relative_to(ROOT).parts:
            continue
        text = path.read_text()
        found |= set(
            re.findall(r"os\.environ(?:\.get|\.setdefault)?\(\s*\"([A-Z][A-Z0-9_]*)\"", text)
        )
        found |= set(re.findall(r"os\.environ\[\"([A-Z][A-Z0-9_]*)\"\]", text))
    for name in ("compose.yml", "Caddyfile"):
        text = (ROOT / "docker" / name).read_text()
        found |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
    # Set by compose for the application from the variables above, not by the operator.
    return found - {"UPSTREAM"}


def test_the_variables_found_include_those_of_each_source():
    found = variables_read()
    assert {"DATABASE_URL", "SECRET_KEY", "SCAN_BURST", "EQ_CONFIRM_S"} <= found  # settings
    assert {"WEB_WORKERS", "WEB_THREADS", "PROMETHEUS_MULTIPROC_DIR"} <= found  # gunicorn, ops
    assert {"POSTGRES_PASSWORD", "MQTT_BACKEND_PASSWORD", "SITE_ADDRESS", "EDGE_SUBNET"} <= found


def test_every_variable_read_is_in_env_example_and_in_docs_configuration_md():
    found = variables_read()
    example = (ROOT / "docker" / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.M))
    missing = sorted(found - NOT_FOR_ENV_FILE - listed)
    assert not missing, f"add to docker/.env.example: {missing}"
    documented = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(n for n in found - NOT_DOCUMENTED if f"`{n}`" not in documented)
    assert not missing, f"document in docs/configuration.md: {missing}"


# ---------------------------------------------------------------- links


def test_nothing_points_to_a_folder_outside_the_repository():
    outside = "shared" + "/"  # the background folder beside the checkout, which users lack
    hits = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in tracked(*TEXT, "Dockerfile", "Caddyfile", "run")
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if outside in line
    ]
    assert not hits, hits


MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_of_the_markdown_files_leads_to_a_file_of_the_repository():
    broken = []
    for doc in tracked(".md"):
        for target in MARKDOWN_LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_readme_links_to_every_document_of_docs():
    readme = (ROOT / "README.md").read_text()
    linked = {(ROOT / t.split("#")[0]).resolve() for t in MARKDOWN_LINK.findall(readme)}
    missing = [d.name for d in sorted((ROOT / "docs").glob("*.md")) if d.resolve() not in linked]
    assert not missing, f"the README links to none of {missing}"


# ---------------------------------------------------------------- the homes of the rules

PACKAGES = ("config", "privacy", "access", "labs", "bookings", "campus", "common")


def _defines(body: list[ast.stmt], name: str) -> list[ast.stmt] | None:
    """The body of what `name` is in these statements (a class's for a class), or None."""
    for node in body:
        defined = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if defined and node.name == name:
            return getattr(node, "body", [])
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return []
    return None


def resolves(dotted: str) -> bool:
    """Whether `app.module.name.attr` names a module of ours and what it defines, read from the
    source (nothing is imported)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        path = (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        )
        if path.is_file():
            body = ast.parse(path.read_text()).body
            for name in parts[cut:]:
                body = _defines(body, name)
                if body is None:
                    return False
            return True
    return False


# Dotted names the documents give that are not modules: loggers.
NOT_MODULES = {"campus.security"}


def code_named_in(doc: Path) -> list[str]:
    """The `app.module.name` paths a document names in backticks."""
    names = re.findall(r"`([a-z_]+(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`", doc.read_text())
    return sorted(
        {n for n in names if n.split(".")[0] in PACKAGES and not n.endswith((".py", ".md"))}
        - NOT_MODULES
    )


def homes_named_in_design_md() -> list[str]:
    return code_named_in(ROOT / "docs" / "design.md")


def test_the_homes_found_in_design_md_include_the_main_rules():
    homes = homes_named_in_design_md()
    assert {"bookings.engine.book", "access.decision.decide", "labs.qualifications"} <= set(homes)
    assert len(homes) > 40
    assert resolves("campus.models.Person.runs_facility") and resolves("common.spreadsheet")
    assert not resolves("bookings.engine.no_such_rule") and not resolves("bookings.nowhere")


def test_every_home_named_in_docs_design_md_exists():
    text = (ROOT / "docs" / "design.md").read_text()
    missing = [name for name in homes_named_in_design_md() if not resolves(name)]
    paths = re.findall(r"`([a-z_]+/[\w/.]+\.py)`", text)
    missing += [path for path in paths if not (ROOT / path).is_file()]
    assert not missing, f"docs/design.md names what the code does not have: {missing}"


def test_every_module_and_function_a_document_names_exists():
    missing = [
        f"{doc.relative_to(ROOT)}: {name}"
        for doc in tracked(".md")
        for name in code_named_in(doc)
        if not resolves(name)
    ]
    assert not missing, missing
