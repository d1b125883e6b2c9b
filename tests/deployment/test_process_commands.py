"""`fedtriage coordinator|node|run`, without a federation: what they refuse before starting
anything, the proxy's configuration as nginx itself reads it, and the process record that
`stop` and `status` rely on (a real child process, stopped by its id)."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.app import main
from cli.deployment.loopback_tls import make_loopback_tls
from cli.deployment.node_processes import NodePaths, node_config
from cli.deployment.proxy import ProxyPlan, proxy_command, proxy_config, write_proxy_config
from cli.deployment.settings import coordinator_settings
from cli.deployment.supervisor import ProcessGroup, ProcessSpec, is_running, read_record, start_time, stop_recorded
from fedtriage.errors import ConfigError, FederationFailed
from tests.support.project import PROJECT_DIR

EXAMPLE = PROJECT_DIR / "docker" / "federation.example.yaml"


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kits") / "kits"
    assert main(["provision", str(EXAMPLE), "--out", str(out)]) == 0
    return out


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_bad_setting_or_a_missing_proxy_is_named_before_anything_starts(
    kits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coordinator = ["coordinator", "start", "--kit", str(kits / "coordinator"), "--state", str(tmp_path / "s")]
    assert "superlink.port" in _error(capsys, [*coordinator, "superlink.port=0"])
    assert "proxy.program" in _error(capsys, [*coordinator, "proxy.program=no-such-nginx"])
    assert "superlink.database" in _error(capsys, [*coordinator, "superlink.database=postgres"])
    assert "superlink.port" in _error(capsys, [*coordinator, "superlink.port=8000"])  # the fleet port
    assert "is a unit's kit" in _error(capsys, ["coordinator", "start", "--kit", str(kits / "unit1")])
    assert "--holdings" in _error(capsys, ["node", "start", "--kit", str(kits / "unit1")])
    node = ["node", "start", "--kit", str(kits / "unit1"), "--holdings", str(tmp_path)]
    assert "supernode.runtime_port" in _error(capsys, [*node, "supernode.runtime_port=-1"])
    assert not (tmp_path / "s").exists()  # nothing was started or written


def test_a_node_whose_coordinator_is_not_reachable_says_so_before_starting(
    kits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holdings = tmp_path / "holdings"
    (holdings / "disc").mkdir(parents=True)
    err = _error(capsys, ["node", "start", "--kit", str(kits / "unit1"), "--holdings", str(holdings),
                          "--state", str(tmp_path / "state")])
    assert "coordinator at 127.0.0.1:8000" in err and "cannot connect" in err
    assert read_record(tmp_path / "state") is None


def test_run_commands_need_a_running_coordinator(kits: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kit = str(kits / "coordinator")
    assert "no coordinator runs" in _error(capsys, ["run", "start", "--kit", kit, "holdings.classes=[a,b]"])
    assert "RUN_ID" in _error(capsys, ["run", "stop", "--kit", kit, "latest"])
    assert "RUN_ID" in _error(capsys, ["run", "resume", "--kit", kit])


def test_node_config_cannot_carry_a_quote(tmp_path: Path) -> None:
    paths = NodePaths(tmp_path / "kit", tmp_path / 'hold"ings', None, tmp_path / "state")
    with pytest.raises(ConfigError, match="quote"):
        node_config(paths, "unit1")
    fine = node_config(NodePaths(tmp_path / "kit", tmp_path / "h", tmp_path / "p.yaml", tmp_path / "s"), "unit1")
    assert fine == (f'kit="{tmp_path}/kit" holdings-path="{tmp_path}/h" node-name="unit1" state="{tmp_path}/s" '
                    f'policy="{tmp_path}/p.yaml"')


def test_the_proxy_forwards_the_fleet_routes_alone_and_nginx_accepts_its_configuration(
    kits: Path, tmp_path: Path
) -> None:
    settings = coordinator_settings()
    tls = make_loopback_tls(tmp_path / "tls", "demo")
    plan = ProxyPlan(tmp_path / "proxy", "0.0.0.0", 8000, kits / "coordinator" / "server.crt",
                     kits / "coordinator" / "server.key", 9093, tls.ca_certificate,
                     tuple(settings.proxy.fleet_routes), 512)
    text = proxy_config(plan)
    assert f"location ~ ^/v1/fleet/({'|'.join(settings.proxy.fleet_routes)})$" in text
    assert "location / { return 404; }" in text
    assert "/v1/control" not in text and "/v1/runtime" not in text
    assert "proxy_ssl_verify on;" in text and f"proxy_ssl_trusted_certificate {tls.ca_certificate};" in text
    assert (tls.key.stat().st_mode & 0o777) == 0o600
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed here (.ci/run installs it)")
    write_proxy_config(plan)
    checked = subprocess.run([*proxy_command(nginx, plan), "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_stop_stops_a_recorded_process_by_its_id_and_leaves_a_reused_id_alone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sleeper = ProcessSpec("sleeper", (sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"),
                          ready_line="up")
    with ProcessGroup("demo", state, stop_timeout_s=5) as group:
        group.start(sleeper, ready_timeout_s=30)
        record = read_record(state)
        assert record is not None and [entry.name for entry in record.processes] == ["sleeper"]
        entry = record.processes[0]
        assert is_running(entry.pid, entry.started)
        # A record whose start time is not the process's: some other process reusing the id.
        assert not is_running(entry.pid, entry.started + 1)
        assert (state / "logs" / "sleeper.log").read_text().endswith("up\n")
    assert not is_running(entry.pid, entry.started)
    assert read_record(state) is None

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = start_time(other.pid)
        assert started is not None
        (state / "processes.json").write_text(
            '{"role": "demo", "supervisor_pid": 1, "supervisor_started": 0, "processes": [{"name": "x", '
            f'"pid": {other.pid}, "started": {started - 1}, "command": [], "log": ""}}]}}'
        )
        assert stop_recorded(state, timeout_s=2) == []
        time.sleep(0.2)
        assert other.poll() is None  # not ours: left alone
    finally:
        other.kill()
        other.wait()


def test_a_process_that_ends_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    failing = ProcessSpec("failing", (sys.executable, "-c", "import sys; print('no port for me'); sys.exit(3)"),
                          ready_line="never")
    with pytest.raises(Exception, match="(?s)failing ended \\(exit code 3\\).*no port for me"):
        with ProcessGroup("demo", tmp_path / "state", stop_timeout_s=5) as group:
            group.start(failing, ready_timeout_s=30)
    assert read_record(tmp_path / "state") is None


def test_a_fatal_line_left_in_the_log_by_an_earlier_start_does_not_stop_a_new_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "node.log").write_text("Failed to activate SuperNode\n")  # an earlier start's end
    spec = ProcessSpec("node", (sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"),
                       ready_line="up", fatal_lines=(("Failed to activate SuperNode", "refused"),))
    with ProcessGroup("demo", state, stop_timeout_s=5) as group:
        group.start(spec, ready_timeout_s=30)
        record = read_record(state)
        assert record is not None and is_running(record.processes[0].pid, record.processes[0].started)


def test_a_process_started_again_must_come_up_and_a_refusal_then_stops_the_group(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    # Up, then ends (a SuperNode whose coordinator forgot it); started again, it is refused.
    script = ("import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); n = int(p.read_text()) if p.exists() else 0; "
              "p.write_text(str(n + 1)); print('Failed to activate SuperNode' if n else 'up', flush=True); "
              "time.sleep(60 if n else 0.5)")
    spec = ProcessSpec("node", (sys.executable, "-c", script, str(starts)), ready_line="up",
                       fatal_lines=(("Failed to activate SuperNode", "refused"),), restart_after_s=0.1,
                       restart_must_come_up=True)
    with pytest.raises(FederationFailed, match="node: refused"):
        with ProcessGroup("demo", tmp_path / "state", stop_timeout_s=5) as group:
            group.start(spec, ready_timeout_s=30)
            group.watch()
    assert starts.read_text() == "2"
    assert read_record(tmp_path / "state") is None
