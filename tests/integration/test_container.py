"""The container, without Docker: the Dockerfile's own steps run here, and the files that
describe the deployment (Dockerfile, compose.yaml, .env.example) keep in step.

``test_the_dockerfile_steps_build_an_image_that_becomes_ready`` builds the wheel with stage
1's RUN line as written, installs it with stage 2's RUN line as written (``$VENV`` and
``$WHEELS`` point at temporary directories), then starts the image's CMD as a non-root
user in an empty directory and asks ``/readyz`` and the image's HEALTHCHECK. It needs
PyPI (or a pip cache) for the build backend and the dependencies: about 45 s.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from attrs import define, field

from ..servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
EXTRAS = "[server,postgres,mysql]"
NOBODY = 65534  # the unprivileged user the server runs as when the tests run as root


@define
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]] = field(factory=list)  # (instruction, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for kind, args in self.steps if kind == instruction]

    def one(self, instruction: str) -> str:
        [args] = self.all(instruction)
        return args

    def env(self) -> dict[str, str]:
        """ENV and ARG defaults in order, ``$NAME`` expanded as Docker does."""
        values: dict[str, str] = {}
        for kind, args in self.steps:
            if kind not in ("ENV", "ARG"):
                continue
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                values[name] = re.sub(
                    r"\$(\w+)", lambda m: values.get(m.group(1), f"${m.group(1)}"), value
                )
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages and their instructions (comments dropped, continued lines joined)."""
    stages: list[Stage] = []
    joined = re.sub(
        r"\\\n\s*",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    for line in joined.splitlines():
        if not line.strip():
            continue
        kind, _, args = line.strip().partition(" ")
        kind = kind.upper()
        if kind == "FROM":
            words = args.split()
            stages.append(Stage(words[0], words[2] if len(words) == 3 else None))
        else:
            stages[-1].steps.append((kind, args.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    import json

    value = json.loads(args)
    assert isinstance(value, list), args
    return [str(v) for v in value]


def healthcheck_command(args: str) -> list[str]:
    return exec_form(args[args.index("CMD ") + 4 :])


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


# -- the Dockerfile keeps in step ---------------------------------------------------------


def test_the_dockerfile_builds_a_wheel_then_installs_it_with_the_server_extras(
    stages: list[Stage],
) -> None:
    build, final = stages
    assert build.name == "build" and build.base == final.base
    assert re.fullmatch(r"python:3\.1[1-9][\w.-]*", final.base)
    [wheel] = build.all("RUN")
    assert "pip wheel" in wheel and "--no-deps" in wheel
    [install] = [run for run in final.all("RUN") if "pip" in run]
    assert f'"$(ls "$WHEELS"/mjcore-*.whl){EXTRAS}"' in install
    assert install.startswith('python -m venv "$VENV"')
    assert final.one("COPY").startswith("--from=build ")
    assert final.env()["PATH"].startswith(final.env()["VENV"] + "/bin:")


def test_the_image_runs_as_a_non_root_user_with_a_readyz_health_check_on_its_port(
    stages: list[Stage],
) -> None:
    final = stages[-1]
    user = final.one("USER")
    [port] = final.all("EXPOSE")
    command = exec_form(final.one("CMD"))
    check = " ".join(healthcheck_command(final.one("HEALTHCHECK")))

    assert user not in ("root", "0") and f" {user}" in " ".join(final.all("RUN"))
    kinds = [kind for kind, _ in final.steps]
    assert kinds.index("USER") < kinds.index("CMD")  # what runs, runs as that user
    assert command[:2] == ["mjcore", "serve"]
    assert command[command.index("--port") + 1] == port
    assert f"http://127.0.0.1:{port}/readyz" in check
    assert final.one("WORKDIR") in final.env()["MJCORE_DATABASE_URL"]


# -- the same steps, run here -------------------------------------------------------------


@define
class Built:
    root: Path
    venv: Path
    home: Path
    env: dict[str, str]


def _sh(command: str, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


def _copy_context(source: str, target: Path) -> None:
    """COPY from the repository, minus what .dockerignore keeps out of the context."""
    ignored = [
        line.strip().removeprefix("**/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    path = ROOT / source
    if path.is_dir():
        shutil.copytree(path, target, ignore=shutil.ignore_patterns(*ignored), dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


@pytest.fixture(scope="module")
def built(stages: list[Stage]) -> Iterator[Built]:
    build, final = stages
    # not under pytest's tmp dir: that is private to root, and the server runs as nobody
    root = Path(tempfile.mkdtemp(prefix="mjcore-container-"))
    root.chmod(0o755)
    try:
        host_bin = root / "bin"  # `python` as the image has it
        host_bin.mkdir()
        (host_bin / "python").symlink_to(_image_python())
        base = {k: v for k, v in os.environ.items() if not k.startswith("MJCORE_")}
        base["PATH"] = f"{host_bin}:{base.get('PATH', '/usr/bin:/bin')}"

        context = root / "build"  # stage 1: WORKDIR, COPY, RUN
        context.mkdir()
        for copy in build.all("COPY"):
            *sources, dest = copy.split()
            for source in sources:  # as COPY does: a directory's contents, a file by name
                into = context / dest
                _copy_context(
                    source, into / Path(source).name if (ROOT / source).is_file() else into
                )
        for run in build.all("RUN"):
            _sh(run, context, base)

        env = final.env()  # stage 2, with the image's paths mapped to temporary ones
        home = root / "home"
        mapped = {env["VENV"]: str(root / "venv"), env["WHEELS"]: str(root / "wheels")}
        mapped[final.one("WORKDIR")] = str(home)
        for name, value in env.items():
            for inside, outside in mapped.items():
                value = value.replace(inside, outside)
            env[name] = value
        env["PATH"] = env["PATH"].replace("$PATH", base["PATH"])
        source, _ = final.one("COPY").removeprefix("--from=build ").split()
        shutil.copytree(context / Path(source).relative_to("/build"), env["WHEELS"])
        for run in final.all("RUN"):
            if "useradd" in run:
                continue  # no user is added to this machine: setpriv runs the server as nobody
            _sh(run, root, base | env)
        home.mkdir()
        if os.geteuid() == 0:
            os.chown(home, NOBODY, NOBODY)
        yield Built(root, Path(env["VENV"]), home, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _everyone_can_run(path: Path) -> bool:
    real = path.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in (real, *real.parents))


def _image_python() -> Path:
    """This interpreter, unless the unprivileged user cannot run it (a Python installed
    under /root, say): then the system's own Python 3.11+, as the image would have it."""
    here = Path(getattr(sys, "_base_executable", sys.executable))
    if os.geteuid() != 0 or _everyone_can_run(here):
        return here
    for name in ("python3.13", "python3.12", "python3.11"):
        found = shutil.which(name, path="/usr/local/bin:/usr/bin")
        if found and _everyone_can_run(Path(found)):
            return Path(found)
    pytest.skip("no Python 3.11+ that an unprivileged user can run")


def _as_unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv  # already not root
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


@pytest.mark.container
def test_the_dockerfile_steps_build_an_image_that_becomes_ready(
    stages: list[Stage], built: Built
) -> None:
    final = stages[-1]
    port = free_port()
    command = exec_form(final.one("CMD"))
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MJCORE_", "PIP_"))}
    env |= built.env | {"HOME": str(built.home)}
    assert env["MJCORE_DATABASE_URL"] == f"sqlite:///{built.home}/mjcore.db"

    log = built.root / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            _as_unprivileged(command), cwd=built.home, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        ready = _wait_ready(f"http://127.0.0.1:{port}", server, log)
        check = healthcheck_command(final.one("HEALTHCHECK"))
        check = [arg.replace(f":{final.one('EXPOSE')}/", f":{port}/") for arg in check]
        health = subprocess.run(
            _as_unprivileged(check), env=env, capture_output=True, text=True, timeout=30
        )
        asset = httpx.get(f"http://127.0.0.1:{port}/docs/static/swagger-ui-bundle.js")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)

    assert ready == {
        "status": "ready",
        "database": "ok",
        "migrations": "current",
        "providers": {"midjourney": False, "fireworks": False, "listener": False},
    }
    assert health.returncode == 0, health.stderr
    assert asset.status_code == 200  # package data made it into the wheel
    assert shutil.which("mjcore", path=env["PATH"]) == str(built.venv / "bin" / "mjcore")
    database = built.home / "mjcore.db"
    assert database.is_file()
    if os.geteuid() == 0:
        assert database.stat().st_uid == NOBODY
    said = log.read_text()
    assert "Traceback" not in said
    assert f'"store": "sqlite:///{built.home}/mjcore.db"' in said  # serve.start, as JSON


def _wait_ready(url: str, server: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()}")
        try:
            answer = httpx.get(f"{url}/readyz", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"never ready: {log.read_text()}")


# -- compose.yaml and .env.example ---------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_runs_mjcore_the_listener_and_postgres_from_one_env_file(
    compose: dict[str, Any], stages: list[Stage]
) -> None:
    services = compose["services"]
    image_dir = stages[-1].env()["MJCORE_IMAGE_DIR"]

    assert set(services) == {"db", "mjcore", "listener"}
    assert set(compose["volumes"]) == {"pgdata", "images"}
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    for name in ("mjcore", "listener"):
        service = services[name]
        assert service["env_file"] == ".env" and service["build"] == "."
        assert f"images:{image_dir}" in service["volumes"]
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert service["environment"]["MJCORE_DATABASE_URL"].startswith("postgresql://mjcore:")
        assert "@db:5432/mjcore" in service["environment"]["MJCORE_DATABASE_URL"]
    assert services["listener"]["command"] == ["mjcore", "listen"]
    assert services["listener"]["healthcheck"] == {"disable": True}  # no HTTP in there
    assert "healthcheck" not in services["mjcore"]  # the image's: GET /readyz
    assert services["mjcore"]["environment"]["MJCORE_DISCORD_BOT_TOKEN"] == ""
    assert services["mjcore"]["command"] == exec_form(stages[-1].one("CMD"))
    [published] = services["mjcore"]["ports"]
    assert published.endswith(f":{stages[-1].one('EXPOSE')}")


def _example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, line
            values[name] = value
    return values


def test_env_example_names_every_setting_with_secrets_blank(compose: dict[str, Any]) -> None:
    source = (ROOT / "src" / "entrypoints" / "settings.py").read_text()
    settings = set(re.findall(r'reader\.get\("([A-Z_]+)"', source))
    example = _example()
    interpolated = set(re.findall(r"\$\{(\w+)", (ROOT / "compose.yaml").read_text()))

    assert len(settings) > 30
    assert {f"MJCORE_{name}" for name in settings} <= set(example)
    assert interpolated <= set(example)
    secrets = [n for n in example if any(w in n for w in ("SECRET", "PASSWORD", "TOKEN", "KEY"))]
    assert len(secrets) >= 7
    assert {name: example[name] for name in secrets} == dict.fromkeys(secrets, "")
