"""docker/: the images and the demo federation's compose file, checked and run without a Docker engine.

No Docker engine runs here or in CI. So every Dockerfile is parsed (what it copies exists, a
project image copies every package pyproject.toml installs, its programs come from what it
installs, its ENTRYPOINT sets the one list of phone-home switches), and so is docker/compose.yaml
(builds, commands, volumes, networks, dependencies, credentials agree). The compose file's
`command` entries are the one source of the demo's command lines: the slow test reads them and
runs them, through their image's ENTRYPOINT, as local processes, in the compose file's order, as
`docker compose up` would: volumes become folders, service names 127.0.0.1 and fixed ports free
ones; each container has its own loopback, so the SuperLink's and each node's loopback port get a
free port too; PostgreSQL (not here) becomes SQLite. Then the README's `docker compose exec`
command runs in the coordinator's place. Every process is stopped by its process id.
"""

import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, redirect_stdout
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from packaging.requirements import Requirement

from cli.app import COMMANDS
from cli.app import main as fedtriage_main
from cli.deployment.settings import coordinator_settings, node_process_settings
from cli.deployment.supervisor import live_record, stop_recorded
from experiments.loopback_federation import free_port, start_foreground, stop_foreground, stop_session
from fedtriage.environment import PHONE_HOME_SWITCHES
from fl_protocol.provisioning.kit_file import read_unit_kit
from fl_protocol.provisioning.layout import SERVER_CERT_FILE
from fl_protocol.run_config import load_settings
from fl_protocol.settings.policy import load_node_policy
from tests.support.postgres import postgres_bin, postgres_cluster
from tests.support.project import FEDTRIAGE, PROJECT_DIR

pytestmark = pytest.mark.deployment

DOCKER_DIR = PROJECT_DIR / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DOCKERFILES = sorted(DOCKER_DIR.glob("*Dockerfile"))
README = PROJECT_DIR / "README.md"
VENV_BIN = Path(sys.executable).parent
# What the base image (python:3.11-slim) and Debian's packages installed by name provide.
BASE_PROGRAMS = {"/bin/sh", "sh", "python"}
APT_PROGRAMS = {"nginx-light": {"nginx"}}
# Each command that stays in the foreground, and the line it prints once ready.
READY_LINES = {("coordinator", "start"): "ready", ("node", "start"): "connected"}
# A container has its own loopback; on one host these loopback ports would collide.
LOOPBACK_PORT_SETTINGS = {("coordinator", "start"): "superlink.port", ("node", "start"): "supernode.runtime_port"}


# --- Dockerfiles ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dockerfile:
    path: Path
    instructions: tuple[tuple[str, str], ...]  # (INSTRUCTION, its arguments), continuation lines joined

    @classmethod
    def read(cls, path: Path) -> "Dockerfile":
        joined, current = [], ""
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("#") or not (current or line.strip()):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            joined.append(current + line)
            current = ""
        assert not current, f"{path}: a continued line runs off the end"
        return cls(path, tuple((text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in joined))

    def all(self, name: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == name]

    def exec_form(self, name: str) -> list[str]:
        (*_, last) = self.all(name)
        argv = json.loads(last)
        assert isinstance(argv, list) and all(isinstance(part, str) for part in argv), f"{self.path}: {name}"
        return argv

    def copies(self) -> dict[str, Path]:
        """Container path -> the file or folder of the build context (the project) it is copied from."""
        copied, workdir = {}, "/"
        for instruction, arguments in self.instructions:
            if instruction == "WORKDIR":
                workdir = os.path.join(workdir, arguments)
            elif instruction == "COPY":
                *sources, destination = shlex.split(arguments)
                destination = os.path.normpath(os.path.join(workdir, destination))
                into = destination if len(sources) > 1 or arguments.rstrip().endswith("/") else None
                for source in sources:
                    copied[os.path.join(into, Path(source).name) if into else destination] = PROJECT_DIR / source
        return copied

    @property
    def workdir(self) -> str:
        return os.path.normpath(os.path.join("/", *self.all("WORKDIR")))

    def run_words(self, installer: tuple[str, ...]) -> list[str]:
        """The package arguments of every `<installer> install ...` in a RUN."""
        words = []
        for command in self.all("RUN"):
            for part in re.split(r"&&|;", command):
                tokens = shlex.split(part)
                if tuple(tokens[: len(installer)]) == installer and "install" in tokens:
                    words += [t for t in tokens[tokens.index("install") + 1:] if not t.startswith("-")]
        return words

    @property
    def installs_project(self) -> bool:
        return "." in self.run_words(("pip",))

    def programs(self) -> set[str]:
        """The programs this image provides: its base image's, its apt packages', its pip packages' scripts."""
        provided = set(BASE_PROGRAMS)
        for package in self.run_words(("apt-get",)):
            provided |= APT_PROGRAMS.get(package, set())
        for word in self.run_words(("pip",)):
            name = "fedtriage" if word == "." else Requirement(word).name
            provided |= {e.name for e in metadata.distribution(name).entry_points if e.group == "console_scripts"}
        return provided


def pyproject() -> dict[str, Any]:
    return tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_a_dockerfile_copies_what_exists_and_a_project_image_every_package(path: Path) -> None:
    dockerfile = Dockerfile.read(path)
    copied = dockerfile.copies()
    assert all(source.exists() for source in copied.values()), [str(s) for s in copied.values() if not s.exists()]
    assert not any(source == PROJECT_DIR for source in copied.values())  # never the whole build folder
    if dockerfile.installs_project:
        included = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
        installed = {pattern.rstrip("*") for pattern in included}
        top_level = {source.name for source in copied.values() if source.is_dir()}
        assert top_level == installed
        assert {"pyproject.toml", "README.md"} <= {source.name for source in copied.values()}
        assert copied[f"{dockerfile.workdir}/cli"] == PROJECT_DIR / "cli"  # installed from where it was copied


def test_the_coordinator_and_node_images_hold_the_same_project_so_their_release_bundles_agree() -> None:
    # A node runs the app bundle of its own installed release (code.approve_installed_release): the
    # coordinator's `run start` must submit the same bytes, so both images copy the same project files.
    coordinator, node = (Dockerfile.read(DOCKER_DIR / f"{name}.Dockerfile").copies()
                         for name in ("coordinator", "node"))
    assert coordinator == node


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_a_dockerfile_pins_what_pyproject_pins_and_runs_what_it_installs(path: Path) -> None:
    dockerfile = Dockerfile.read(path)
    pinned = {Requirement(line).name: Requirement(line) for line in pyproject()["project"]["dependencies"]}
    for word in dockerfile.run_words(("pip",)):
        if word != "." and (requirement := Requirement(word)).name in pinned:
            assert requirement.specifier == pinned[requirement.name].specifier, word
            assert requirement.specifier, f"{path.name}: {word} unpinned"
    entrypoint = dockerfile.exec_form("ENTRYPOINT")
    assert entrypoint[0] in BASE_PROGRAMS and Path(entrypoint[0]).is_file()
    # What it runs: the program its entrypoint's shell execs, or the CMD's when it execs "$@".
    script = entrypoint[2] if entrypoint[1:2] == ["-c"] else ""
    runs = [word for word in re.findall(r"exec (\S+)", script) if word != '"$@"']
    runs += dockerfile.exec_form("CMD")[:1] if dockerfile.all("CMD") else []
    assert runs, f"{path.name} runs nothing"
    for program in runs:
        assert program in dockerfile.programs() and (VENV_BIN / program).is_file(), program


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_an_images_entrypoint_sets_the_one_list_of_phone_home_switches(path: Path, tmp_path: Path) -> None:
    dockerfile = Dockerfile.read(path)
    entrypoint = [container_to_local(part, dockerfile.copies()) for part in dockerfile.exec_form("ENTRYPOINT")]
    if 'exec "$@"' not in " ".join(entrypoint):
        pytest.skip("it runs one program (docker/Dockerfile: simulate; tests/cli/test_no_phone_home.py checks it)")
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    completed = subprocess.run([*entrypoint, "env"], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60, check=True)
    assert {f"{key}={value}" for key, value in PHONE_HOME_SWITCHES.items()} <= set(completed.stdout.splitlines())
    assert "FLWR_TELEMETRY_ENABLED" not in path.read_text()  # no second list to drift


def test_the_coordinator_image_installs_the_proxy_the_coordinator_starts() -> None:
    coordinator = Dockerfile.read(DOCKER_DIR / "coordinator.Dockerfile")
    assert coordinator_settings().proxy.program in coordinator.programs()
    assert "nginx" not in Dockerfile.read(DOCKER_DIR / "node.Dockerfile").programs()


def container_to_local(text: str, mapping: dict[str, Path]) -> str:
    """`text` with every container path of `mapping` (longest first) as the local path it stands for."""
    for container in sorted(mapping, key=len, reverse=True):
        text = re.sub(rf"(?<![\w./-]){re.escape(container)}(?=$|[/\s'\",:)])", lambda _, c=container: str(mapping[c]),
                      text)
    return text


# --- the compose file ----------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def service_dockerfile(service: dict[str, Any]) -> Dockerfile | None:
    build = service.get("build")
    if build is None:
        return None
    return Dockerfile.read((DOCKER_DIR / build["context"] / build["dockerfile"]).resolve())


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's volumes in long syntax."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            kind = "bind" if source.startswith((".", "/")) else "volume"
            volume = {"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]}
        found.append(volume)
    return found


def federation_file() -> dict[str, Any]:
    provision = services()["provision"]
    (mount,) = [m for m in mounts(provision) if m["target"] == provision["command"][2]]
    return yaml.safe_load((DOCKER_DIR / mount["source"]).read_text(encoding="utf-8"))


def fedtriage_help(command: str) -> str:
    """`fedtriage COMMAND --help`, in this process (argparse ends it with SystemExit 0)."""
    printed = io.StringIO()
    with redirect_stdout(printed), pytest.raises(SystemExit) as ended:
        fedtriage_main([command, "--help"])
    assert ended.value.code == 0
    return printed.getvalue()


def check_fedtriage_command(argv: list[str]) -> None:
    """A `fedtriage` command line: its command exists, its options are its command's, its settings compose."""
    assert argv[0] == "fedtriage" and argv[1] in COMMANDS, argv
    helped = fedtriage_help(argv[1])
    options = [part.split("=", 1)[0] for part in argv[2:] if part.startswith("--")]
    assert all(re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helped) for option in options), (argv, helped)
    settings = [part for part in argv[3:] if "=" in part and not part.startswith("-")]
    if argv[1] in ("coordinator", "node", "run"):
        assert argv[2] in re.search(r"\{([\w,]+)\}", helped)[1].split(","), argv  # type: ignore[index]
    if argv[1:3] == ["coordinator", "start"]:
        coordinator_settings(settings)
    elif argv[1:3] == ["node", "start"]:
        node_process_settings(settings)
    elif argv[1:3] == ["run", "start"]:
        load_settings(settings)
    else:
        assert not settings, argv


def test_every_service_builds_from_a_dockerfile_here_or_names_an_official_image() -> None:
    images: dict[str, dict[str, Any]] = {}
    for name, service in services().items():
        if "build" not in service:
            assert re.fullmatch(r"postgres:\d+", service["image"]), name  # PostgreSQL, the official image
            continue
        assert (DOCKER_DIR / service["build"]["context"]).resolve() == PROJECT_DIR, name
        assert service_dockerfile(service).path in DOCKERFILES, name  # type: ignore[union-attr]
        assert images.setdefault(service["image"], service["build"]) == service["build"], name  # one build per image


def test_every_services_command_is_a_program_of_its_image_whose_options_parse() -> None:
    for name, service in services().items():
        dockerfile = service_dockerfile(service)
        if dockerfile is None:
            continue
        argv = service["command"]
        assert isinstance(argv, list), f"{name}: exec form, so no shell stands between compose and the program"
        assert argv[0] in dockerfile.programs(), name
        if argv[0] == "fedtriage":
            check_fedtriage_command(argv)
        else:
            completed = subprocess.run([VENV_BIN / argv[0], *argv[1:2], "--help"], capture_output=True, text=True,
                                       timeout=120)
            assert completed.returncode == 0, completed.stderr
            options = [part for part in argv[2:] if part.startswith("--")]
            assert all(option in completed.stdout for option in options), name
        check = service.get("healthcheck", {}).get("test")
        if check:
            program = shlex.split(check[1])[0] if check[0] == "CMD-SHELL" else check[1]
            assert program in dockerfile.programs(), f"{name}: healthcheck {program}"


def test_volumes_networks_and_dependencies_agree() -> None:
    document = compose()
    declared_volumes = set(document["volumes"])
    used: set[str] = set()
    for name, service in document["services"].items():
        command = " ".join(service.get("command", []))
        for mount in mounts(service):
            if mount["type"] == "volume":
                assert mount["source"] in declared_volumes, (name, mount)
                used.add(mount["source"])
            else:
                assert (DOCKER_DIR / mount["source"]).is_file(), (name, mount)
                assert mount.get("read_only"), (name, mount)
        targets = [m["target"] for m in mounts(service)]
        for path in re.findall(r"(?<![\w:/])/[\w./-]+", command):  # a container path the command names is mounted
            assert any(path == t or path.startswith(t + "/") for t in targets), (name, path)
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in document["services"], (name, needed)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in document["services"][needed], needed
            elif condition["condition"] == "service_completed_successfully":
                assert document["services"][needed]["restart"] == "no", needed
        for network in service.get("networks", []):
            assert network in document["networks"], (name, network)
    assert used == declared_volumes


def test_each_party_mounts_its_own_kit_and_the_units_their_own_holdings() -> None:
    federation = federation_file()
    everything = services()
    units = [name for name in everything if name in federation["units"]]
    assert units == federation["units"]
    provision = everything["provision"]
    (kits,) = [m for m in mounts(provision) if m["target"] == provision["command"][-1]]  # --out
    for party in ["coordinator", *units]:
        (kit,) = [m for m in mounts(everything[party]) if m["target"] == "/kit"]
        assert kit["source"] == kits["source"] and kit["volume"]["subpath"] == party
    for unit in units:
        service = everything[unit]
        (holdings,) = [m for m in mounts(service) if m["target"] == service["command"][service["command"].index(
            "--holdings") + 1]]
        assert holdings["read_only"]
        writer = everything[f"holdings-{unit}"]
        assert writer["command"][-2:] == ["--holdings", unit]  # each unit its own generated images
        assert [m["source"] for m in mounts(writer)] == [holdings["source"]]
        assert service["depends_on"] == {"coordinator": {"condition": "service_healthy"},
                                         f"holdings-{unit}": {"condition": "service_completed_successfully"}}
        assert service["restart"] == "on-failure"  # a node refuses to start while the coordinator is away
        (policy,) = [m for m in mounts(service) if m["target"] == service["command"][-1]]
        assert load_node_policy(DOCKER_DIR / policy["source"]).secure.min_peers == len(units) - 1


def test_units_reach_the_coordinator_alone_and_only_the_coordinator_reaches_mlflow() -> None:
    everything = services()
    federation = federation_file()
    assert federation["coordinator"]["addresses"][0] == "coordinator"  # the name units connect to
    assert str(federation["coordinator"]["fleet_port"]) in everything["coordinator"]["expose"]
    for unit in federation["units"]:
        assert everything[unit]["networks"] == ["fleet"]
    for name in ("mlflow", "postgres"):
        assert "fleet" not in everything[name]["networks"]
    assert set(everything["coordinator"]["networks"]) == {"fleet", "tracking"}
    assert all(compose()["networks"][network].get("internal") for network in ("fleet", "tracking"))
    # The coordinator's MLflow address is the mlflow service's, whose store is postgres's database.
    (tracking,) = [part for part in everything["coordinator"]["command"] if part.startswith("tracking.")]
    uri = urllib.parse.urlsplit(tracking.split("=", 1)[1])
    assert uri.hostname == "mlflow" and str(uri.port) in everything["mlflow"]["expose"]
    mlflow = everything["mlflow"]["command"]
    store = urllib.parse.urlsplit(mlflow[mlflow.index("--backend-store-uri") + 1])
    postgres = everything["postgres"]["environment"]
    assert (store.hostname, store.username, store.password, store.path) == (
        "postgres", postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], f"/{postgres['POSTGRES_DB']}")
    allowed = mlflow[mlflow.index("--allowed-hosts") + 1].split(",")
    assert f"mlflow:{uri.port}" in allowed  # MLflow refuses Host headers it does not list


def test_the_compose_federation_names_the_coordinator_by_its_service_name(tmp_path: Path) -> None:
    provision = services()["provision"]
    (mount,) = [m for m in mounts(provision) if m["target"] == provision["command"][2]]
    made = subprocess.run([FEDTRIAGE, "provision", str(DOCKER_DIR / mount["source"]), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert read_unit_kit(tmp_path / "unit1").fleet_address == "coordinator:8000"
    certificate = x509.load_pem_x509_certificate((tmp_path / "coordinator" / SERVER_CERT_FILE).read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "coordinator" in names.get_values_for_type(x509.DNSName)


# --- the README's Docker commands ----------------------------------------------------------------

def readme_docker_commands() -> list[list[str]]:
    """The commands of the README's "With Docker" block: `docker compose -f docker/compose.yaml ...`."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### With Docker"):]
    block = re.search(r"^```console\n(.*?)^```$", section, flags=re.S | re.M)[1]  # type: ignore[index]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        assert words[:4] == ["docker", "compose", "-f", "docker/compose.yaml"], line
        commands.append(words[4:])
    return commands


def test_the_readmes_docker_commands_are_up_exec_and_down_of_the_compose_file() -> None:
    commands = readme_docker_commands()
    assert [command[0] for command in commands] == ["up", "exec", "down"]
    service, *argv = commands[1][1:]
    assert service in services()
    check_fedtriage_command(argv)
    (classes,) = [part for part in argv if part.startswith("holdings.classes=")]  # what the demo units hold
    assert load_settings([classes]).holdings.classes == load_settings(["holdings=synthetic"]).holdings.classes


# --- the compose file's command lines as local processes -----------------------------------------

@dataclass
class LocalCompose:
    """docker/compose.yaml on this host: each service's command line where a container would run it."""

    root: Path
    postgres: str | None = None  # the local PostgreSQL's URI, or None: SQLite
    document: dict[str, Any] = field(default_factory=compose)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)  # (service, its port) -> a free port here
    running: list[tuple[str, subprocess.Popen[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, service in self.document["services"].items():
            for port in service.get("expose", []):
                self.ports[(name, int(port))] = free_port()

    def order(self) -> list[str]:
        """The services in the order `up` starts them (each after what it depends on)."""
        ordered: list[str] = []

        def visit(name: str) -> None:
            for needed in self.document["services"][name].get("depends_on", {}):
                visit(needed)
            if name not in ordered:
                ordered.append(name)

        for name in self.document["services"]:
            visit(name)
        return ordered

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name

    def paths(self, name: str) -> dict[str, Path]:
        """Container path -> local path: its image's copied files, its volumes, its bind mounts."""
        service = self.document["services"][name]
        dockerfile = service_dockerfile(service)
        mapping = dict(dockerfile.copies()) if dockerfile else {}
        for mount in mounts(service):
            if mount["type"] == "volume":
                local = self.volume(mount["source"]) / mount.get("volume", {}).get("subpath", "")
            else:
                local = self.bind_source(DOCKER_DIR / mount["source"])
            mapping[mount["target"]] = local
        return mapping

    def bind_source(self, source: Path) -> Path:
        """A bind-mounted file; a federation file names the coordinator by service name and port: made local."""
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
        if not (isinstance(document, dict) and "coordinator" in document and "units" in document):
            return source
        coordinator = document["coordinator"]
        service = coordinator["addresses"][0]
        coordinator["fleet_port"] = self.ports[(service, int(coordinator["fleet_port"]))]
        coordinator["addresses"] = ["127.0.0.1" if a in self.document["services"] else a
                                    for a in coordinator["addresses"]]
        local = self.root / "binds" / source.name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(yaml.safe_dump(document), encoding="utf-8")
        return local

    def localize(self, name: str, part: str) -> str:
        """One argument of `name`'s command line as it reads on this host."""
        part = container_to_local(part, self.paths(name))
        for (service, port), local in self.ports.items():
            part = re.sub(rf"(?<![\w.-]){re.escape(service)}:{port}(?!\d)", f"127.0.0.1:{local}", part)
            if service == name:  # its own port, as itself sees it
                part = re.sub(rf"(?<![\w.-])(127\.0\.0\.1|localhost):{port}(?!\d)", f"127.0.0.1:{local}", part)
        store = urllib.parse.urlsplit(part)
        if store.scheme.startswith("postgresql") and store.hostname in self.document["services"]:
            if self.postgres is None:
                return f"sqlite:///{self.root / 'postgres.db'}"
            local = urllib.parse.urlsplit(self.postgres)  # its user, password and database; the local server
            return store._replace(netloc=f"{store.netloc.rsplit('@', 1)[0]}@{local.hostname}:{local.port}").geturl()
        return "127.0.0.1" if part == "0.0.0.0" else part

    def argv(self, name: str, command: list[str] | None = None) -> list[str]:
        """ENTRYPOINT + command, as a container of `name` runs it, localized."""
        service = self.document["services"][name]
        command = list(service["command"] if command is None else command)
        if "--port" in command:  # a server's own port
            command[command.index("--port") + 1] = str(self.ports[(name, int(command[command.index("--port") + 1]))])
        setting = LOOPBACK_PORT_SETTINGS.get(tuple(command[1:3]))  # type: ignore[arg-type]
        if setting:
            command.append(f"{setting}={free_port()}")
        entrypoint = service_dockerfile(service).exec_form("ENTRYPOINT")  # type: ignore[union-attr]
        return [self.localize(name, part) for part in [*entrypoint, *command]]

    def healthcheck(self, name: str) -> list[str]:
        check = self.document["services"][name]["healthcheck"]["test"]
        argv = ["/bin/sh", "-c", check[1]] if check[0] == "CMD-SHELL" else check[1:]
        return [self.localize(name, part) for part in argv]

    def env(self) -> dict[str, str]:
        return dict(os.environ)  # as the fixture set it (start_foreground passes its own)

    def workdir(self, name: str) -> Path:
        folder = self.root / "workdirs" / name  # never the project: a command may write where it runs
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def up(self) -> None:
        """Every service of the compose file, in `up`'s order: one-shots to their end, the others until ready."""
        for name in self.order():
            service = self.document["services"][name]
            if "build" not in service:
                continue  # postgres: the fixture's cluster, or SQLite
            for mount in mounts(service):
                if mount["type"] == "volume":
                    self.volume(mount["source"]).mkdir(parents=True, exist_ok=True)
            argv = self.argv(name)
            if service.get("restart") == "no":
                done = subprocess.run(argv, cwd=self.workdir(name), env=self.env(), capture_output=True, text=True,
                                      timeout=300)
                assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
            elif (ready := READY_LINES.get(tuple(service["command"][1:3]))) is not None:  # type: ignore[arg-type]
                self.running.append((name, start_foreground(argv, ready, self.workdir(name), timeout=180)))
            else:
                log = (self.root / f"{name}.log").open("w")
                self.running.append((name, subprocess.Popen(argv, cwd=self.workdir(name), env=self.env(), text=True,
                                                            stdout=log, stderr=subprocess.STDOUT,
                                                            start_new_session=True)))
            if "healthcheck" in service:
                self.wait_healthy(name)

    def wait_healthy(self, name: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while subprocess.run(self.healthcheck(name), env=self.env(), capture_output=True, timeout=60).returncode:
            process = dict(self.running)[name]
            log = self.root / f"{name}.log"
            assert process.poll() is None, f"{name} exited {process.returncode}: " + (
                log.read_text()[-3000:] if log.is_file() else "")
            assert time.monotonic() < deadline, f"{name} not healthy within {timeout_s} s"
            time.sleep(1)

    def exec(self, name: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """`docker compose exec NAME ARGV`: in the service's place, without its entrypoint."""
        return subprocess.run([self.localize(name, part) for part in argv], cwd=self.workdir(name), env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def down(self) -> None:
        for name, process in reversed(self.running):
            if READY_LINES.get(tuple(self.document["services"][name]["command"][1:3])):  # type: ignore[arg-type]
                stop_foreground(process)
            elif process.poll() is None:
                stop_session(process)
        kits = self.volume("kits")
        for kit in sorted(kits.iterdir()) if kits.is_dir() else ():
            stop_recorded(kit / "state", timeout_s=10)


@pytest.fixture
def local_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCompose]:
    """The compose file's services on this host; no MLflow or Flower setting of the shell reaches them."""
    for name in [name for name in os.environ if name.startswith(("MLFLOW_", "FLWR_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")  # `fedtriage`, `python` of this venv
    with ExitStack() as stack:
        postgres = None
        if postgres_bin() is not None and importlib.util.find_spec("psycopg") is not None:
            postgres = stack.enter_context(postgres_cluster())
        federation = LocalCompose(tmp_path, postgres)
        try:
            yield federation
        finally:
            federation.down()


def mlflow_call(server: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call of MLflow's REST API: POST with `body`, else GET."""
    request = urllib.request.Request(f"{server}/api/2.0/mlflow/{path}", headers={"Content-Type": "application/json"},
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as err:
        raise AssertionError(f"MLflow answered {path} with {err.code}: {err.read()[:2000]!r}") from None


def mlflow_runs(server: str) -> list[dict[str, Any]]:
    experiments = mlflow_call(server, "experiments/search", {"max_results": 100}).get("experiments", [])
    ids = [experiment["experiment_id"] for experiment in experiments]
    return mlflow_call(server, "runs/search", {"experiment_ids": ids, "max_results": 100}).get("runs", [])


@pytest.mark.slow
def test_the_compose_command_lines_run_a_secagg_federation_recorded_in_mlflow(local_compose: LocalCompose) -> None:
    up, run, down = readme_docker_commands()
    assert up == ["up"] and down == ["down"]
    local_compose.up()
    if local_compose.postgres is not None:  # MLflow's store: the PostgreSQL standing in for the postgres service
        store = urllib.parse.urlsplit(local_compose.postgres)
        assert f"@{store.hostname}:{store.port}/" in " ".join(local_compose.argv("mlflow"))

    for unit in federation_file()["units"]:
        record = live_record(local_compose.volume("kits") / unit / "state")
        assert record is not None and record.ready, unit
    service, *argv = run[1:]
    started = local_compose.exec(service, argv, timeout=900)
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    assert "finished:completed" in started.stdout
    assert "3/3 nodes" in started.stdout

    mlflow = f"http://127.0.0.1:{local_compose.ports[('mlflow', 5000)]}"
    finished = [r for r in mlflow_runs(mlflow) if r["info"]["status"] == "FINISHED"]
    assert len(finished) == 1, "the run is recorded in the coordinator's MLflow server"
    query = urllib.parse.urlencode({"run_id": finished[0]["info"]["run_id"], "metric_key": "train/train-loss"})
    history = mlflow_call(mlflow, f"metrics/get-history?{query}").get("metrics", [])
    (rounds,) = [part.split("=", 1)[1] for part in argv if part.startswith("federation.num_rounds=")]
    assert sorted({metric["step"] for metric in history}) == list(range(1, int(rounds) + 1))

    local_compose.down()
    assert not any(process.poll() is None for _, process in local_compose.running)
    for kit in ("coordinator", *federation_file()["units"]):
        assert live_record(local_compose.volume("kits") / kit / "state") is None



def test_demo_holdings_are_category_folders_of_each_units_own_images_kept_on_a_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the compose file's `holdings-unitN` services write: `fedtriage demo DIR --holdings UNIT`."""

    def files(root: Path) -> dict[str, bytes]:
        return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.*"))
                if path.is_file() and not path.name.startswith(".")}

    for unit in ("unit1", "unit2"):
        assert fedtriage_main(["demo", str(tmp_path / unit), "--holdings", unit, "--images-per-class", "2"]) == 0
    first, second = files(tmp_path / "unit1"), files(tmp_path / "unit2")
    classes = load_settings(["holdings=synthetic"]).holdings.classes
    assert sorted({Path(name).parent.name for name in first}) == sorted(classes) and len(first) == 2 * len(classes)
    assert first.keys() == second.keys() and all(first[name] != second[name] for name in first)

    capsys.readouterr()
    assert fedtriage_main(["demo", str(tmp_path / "unit1"), "--holdings", "unit1", "--images-per-class", "2"]) == 0
    assert capsys.readouterr().out.startswith("kept unit1's holdings")  # a restarted container changes nothing
    assert files(tmp_path / "unit1") == first

    (tmp_path / "case" / "a").mkdir(parents=True)
    (tmp_path / "case" / "a" / "x.png").write_bytes(b"not ours")
    assert fedtriage_main(["demo", str(tmp_path / "case"), "--holdings", "unit1"]) == 2  # never into a unit's own
    assert (tmp_path / "case" / "a" / "x.png").read_bytes() == b"not ours"
