"""nginx as the WebTunnel front: TLS with a trustme test CA, `location = /<secret>` upgraded
to the webtunnel server, everything else a static page.

Two virtual hosts on the one port, chosen by nginx from the `Host` header: `bridge.test` (also
the default, for `Host: 127.0.0.1`) routes the secret path to the bridge; `decoy.test` is a
plain web site that knows no secret path (404). The certificate names both, so a client can
send `decoy.test` as SNI and still reach the bridge by `Host` (lyrebird 0.8's servername=).

No root-owned paths: config, pid file, logs, temp paths and web root live in the prefix dir.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

import trustme

from .ports import LOOPBACK, free_port, wait_accepting
from .procs import Child, ProcessGroup

NGINX = "nginx"
TLS_NAME = "bridge.test"
#: A second virtual host on the same nginx, with no route to the bridge.
DECOY_NAME = "decoy.test"
START_TIMEOUT_S = 20.0
INDEX_HTML = "<!doctype html><title>bridge.test</title><p>Nothing to see here.</p>\n"


def random_secret_path(length: int = 24) -> str:
    """Alphanumeric, like the paths in real WebTunnel bridge lines."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class TestCA:
    ca_pem: Path  # give this to the PT through SSL_CERT_FILE
    cert_pem: Path  # server chain (leaf first)
    key_pem: Path


def make_test_ca(
    directory: Path, names: tuple[str, ...] = (TLS_NAME, DECOY_NAME, LOOPBACK)
) -> TestCA:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert(*names)
    files = TestCA(directory / "ca.pem", directory / "server-chain.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_pem))
    leaf.private_key_pem.write_to_path(str(files.key_pem))
    files.cert_pem.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return files


@dataclass
class Nginx:
    prefix: Path
    port: int
    secret_path: str
    tls: TestCA
    child: Child | None = None

    @property
    def conf_path(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    def url(self, path: str | None = None, host: str = LOOPBACK) -> str:
        return f"https://{host}:{self.port}/{self.secret_path if path is None else path}"


def render_conf(
    prefix: Path, *, port: int, secret_path: str, upstream_port: int, tls: TestCA
) -> str:
    temp = prefix / "temp"
    # As root, workers would drop to `nobody` and could not read the 0700 test dirs.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""\
{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
    client_body_temp_path {temp / "client_body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    default_type text/html;
    server {{
        listen {LOOPBACK}:{port} ssl default_server;
        server_name {TLS_NAME};
        ssl_certificate {tls.cert_pem};
        ssl_certificate_key {tls.key_pem};
        ssl_protocols TLSv1.2 TLSv1.3;
        location = /{secret_path} {{
            proxy_pass http://{LOOPBACK}:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1d;
            proxy_send_timeout 1d;
        }}
        location / {{
            root {prefix / "html"};
            index index.html;
        }}
    }}
    server {{
        listen {LOOPBACK}:{port} ssl;
        server_name {DECOY_NAME};
        ssl_certificate {tls.cert_pem};
        ssl_certificate_key {tls.key_pem};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            root {prefix / "html"};
            index index.html;
        }}
    }}
}}
"""


def start_nginx(
    processes: ProcessGroup,
    prefix: Path,
    *,
    upstream_port: int,
    tls: TestCA,
    secret_path: str | None = None,
    port: int | None = None,
) -> Nginx:
    """Start nginx in the foreground as a child of `processes`; return once it accepts."""
    nginx = Nginx(prefix, port or free_port(), secret_path or random_secret_path(), tls)
    for sub in ("html", "temp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "html" / "index.html").write_text(INDEX_HTML)
    nginx.conf_path.write_text(
        render_conf(
            prefix,
            port=nginx.port,
            secret_path=nginx.secret_path,
            upstream_port=upstream_port,
            tls=tls,
        )
    )
    argv = [NGINX, "-p", str(prefix), "-c", str(nginx.conf_path), "-e", str(nginx.error_log)]
    nginx.child = processes.start("nginx", argv, log_path=prefix / "stdout.log")
    wait_accepting(nginx.port, START_TIMEOUT_S, "nginx", alive=nginx.child.check_alive)
    return nginx
