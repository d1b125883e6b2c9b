"""The coordinator's TLS reverse proxy: nginx, exposing the SuperLink's Fleet routes only.

Flower 1.42 serves Fleet, Control and Runtime on one port, and its open-source Control API
accepts anyone (list nodes, register a key, start a run). nginx, from the distribution and
maintained for exactly this (TLS termination, path rules, request size limits), takes the
federation's fleet port with the kit's server certificate and forwards `POST
/v1/fleet/<route>` for the Fleet routes alone to the SuperLink on loopback, checking the
SuperLink's loopback certificate; every other path gets 404, every other method 403.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from cli.deployment.loopback_tls import LOOPBACK_NAME
from cli.deployment.settings import ProxySettings
from fedtriage.errors import ConfigError


@dataclass(frozen=True)
class ProxyPlan:
    """Everything the proxy's configuration names."""

    folder: Path  # nginx's prefix: its config, pid, logs and temporary files
    listen: str
    port: int
    server_certificate: Path
    server_key: Path
    upstream_port: int
    upstream_ca: Path
    fleet_routes: tuple[str, ...]
    max_body_mb: int

    @property
    def config_file(self) -> Path:
        return self.folder / "nginx.conf"


def proxy_program(settings: ProxySettings) -> str:
    """The nginx executable, or a `ConfigError` saying how to install it."""
    found = shutil.which(settings.program)
    if found is None:
        raise ConfigError("proxy.program", f"{settings.program!r} is not on PATH: install nginx from the "
                          "distribution (Debian/Ubuntu: apt-get install nginx-light) or give its path")
    return found


def proxy_command(program: str, plan: ProxyPlan) -> tuple[str, ...]:
    """nginx in the foreground, under its own prefix (no system configuration read or written)."""
    return (program, "-p", f"{plan.folder}/", "-c", str(plan.config_file), "-e", str(plan.folder / "error.log"))


def write_proxy_config(plan: ProxyPlan) -> Path:
    (plan.folder / "tmp").mkdir(mode=0o700, parents=True, exist_ok=True)
    plan.config_file.write_text(proxy_config(plan), encoding="utf-8")
    return plan.config_file


def proxy_config(plan: ProxyPlan) -> str:
    folder = plan.folder
    routes = "|".join(plan.fleet_routes)
    listen = f"[{plan.listen}]" if ":" in plan.listen else plan.listen
    return f"""# Written by `fedtriage coordinator start` at each start; edits are lost.
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
    # Each Fleet request with its time to the millisecond, its sizes and how long it took
    # (here and at the SuperLink): what a coordinator needs to see where a round's time goes.
    log_format fleet '$msec $remote_addr "$request" $status in=$request_length out=$bytes_sent '
                     'took=$request_time superlink=$upstream_response_time';
    access_log {folder}/access.log fleet;
    client_body_temp_path {folder}/tmp/body;
    proxy_temp_path {folder}/tmp/proxy;
    fastcgi_temp_path {folder}/tmp/fastcgi;
    uwsgi_temp_path {folder}/tmp/uwsgi;
    scgi_temp_path {folder}/tmp/scgi;
    server_tokens off;
    client_max_body_size {plan.max_body_mb}m;
    # Kept-alive TLS connections to the SuperLink: a new handshake per Fleet request cost the
    # SuperLink about a third of its CPU under nodes' polling.
    upstream superlink {{
        server 127.0.0.1:{plan.upstream_port};
        keepalive 32;
    }}
    server {{
        listen {listen}:{plan.port} ssl;
        ssl_certificate {plan.server_certificate};
        ssl_certificate_key {plan.server_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        # The Fleet API, and nothing else, reaches the SuperLink.
        location ~ ^/v1/fleet/({routes})$ {{
            limit_except POST {{ deny all; }}
            proxy_pass https://superlink;
            proxy_set_header Connection "";
            proxy_ssl_trusted_certificate {plan.upstream_ca};
            proxy_ssl_verify on;
            proxy_ssl_name {LOOPBACK_NAME};
            proxy_ssl_server_name on;
            proxy_http_version 1.1;
            # Streamed both ways: no request or reply is written to disk on this host (the
            # workers run as an unprivileged user, and updates need no second copy).
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
        location / {{ return 404; }}
    }}
}}
"""
