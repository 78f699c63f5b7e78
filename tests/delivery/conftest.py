"""Fixtures for deliveries: a real OpenSSH server on loopback, a CSV integration approved
for a small district, and a destination pointing at the server.

The server is Debian's ``/usr/sbin/sshd`` started by the test session as the current user,
with its own host key, an ``AuthorizedKeysFile`` the tests write, and the real
``sftp-server`` subsystem; nothing on the far side is faked.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from apps.delivery import services
from apps.delivery.models import Transport
from apps.vendors.models import IntegrationKind
from tests.conftest import require_service
from tests.governance import release_world as world

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def keypair() -> tuple[str, str]:
    """(OpenSSH private key text, public key line) for a fresh ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return private, public


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshServer:
    """A running sshd; ``stop()``/``start()`` simulate an outage on the same port."""

    root: Path
    port: int
    host_key_line: str
    client_private: str
    client_public: str
    process: subprocess.Popen | None = None

    @property
    def user(self) -> str:
        import getpass

        return getpass.getuser()

    def folder(self, name: str) -> Path:
        path = self.root / "files" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> None:
        config = self.root / "sshd_config"
        self.process = subprocess.Popen(  # noqa: S603
            [SSHD, "-D", "-e", "-f", str(config), "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError((self.root / "sshd.log").read_text()) from None
                time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> Iterator[SshServer]:  # type: ignore[no-untyped-def]
    if not (os.path.exists(SSHD) and os.path.exists(SFTP_SERVER)):
        require_service("sshd", f"{SSHD} or {SFTP_SERVER} is not installed (openssh-server)")
    root = tmp_path_factory.mktemp("sshd")
    host_private, host_public = keypair()
    (root / "host_key").write_text(host_private)
    (root / "host_key").chmod(0o600)
    client_private, client_public = keypair()
    (root / "authorized_keys").write_text(client_public + "\n")
    if os.geteuid() == 0:
        # sshd started by root insists on its privilege separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    (root / "sshd_config").write_text(
        "ListenAddress 127.0.0.1\n"
        f"HostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
        f"PidFile {root / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\n"
        f"Subsystem sftp {SFTP_SERVER}\n"
    )
    server = SshServer(root=root, port=free_port(), host_key_line=host_public,
                       client_private=client_private, client_public=client_public)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def running_sshd(sshd) -> SshServer:  # type: ignore[no-untyped-def]
    """The session server, restarted if a test left it stopped."""
    if sshd.process is None or sshd.process.poll() is not None:
        sshd.start()
    return sshd


@pytest.fixture(autouse=True)
def _isolated(fresh_cache, fresh_master_key):  # type: ignore[no-untyped-def]
    """Every test here has its own master key and an empty cache."""


@pytest.fixture
def operator(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="eng.ops", role="engineer")


def district() -> None:
    """dist > sch1; another district's school sch9. Pupils p1, p2 and teacher t1 at sch1,
    p9 at sch9; one class with enrollments; demographics."""
    world.org("dist", type="district")
    world.org("sch1", "dist")
    world.org("other", type="district")
    world.org("sch9", "other")
    world.rows("academicSessions",
               {"sourced_id": "term-1", "title": "Autumn", "type": "term",
                "start_date": "2024-09-01", "end_date": "2024-12-20", "school_year": 2025})
    world.rows("courses", {"sourced_id": "course-1", "title": "Maths", "org_sourced_id": "sch1"})
    world.user("p1", org="sch1", primary_org="sch1", grades=["07"])
    world.user("p2", org="sch1", primary_org="sch1")
    world.user("t1", org="sch1", role="teacher", primary_org="sch1")
    world.user("p9", org="sch9", primary_org="sch9")
    world.klass("cls1", "sch1")
    world.enrol("p1", "cls1", "sch1")
    world.enrol("p2", "cls1", "sch1")
    world.enrol("t1", "cls1", "sch1", role="teacher")
    world.demographic("p1")
    world.demographic("p2")


@pytest.fixture
def csv_integration(db):  # type: ignore[no-untyped-def]
    """An active OneRoster CSV integration approved for identifiers and directory data of
    the district (not contact details, not demographics)."""
    district()
    integration = world.integration(kind=IntegrationKind.ONEROSTER_CSV, name="csv-vendor")
    world.approve(integration, orgs=("dist",), services=("csv.delivery",))
    return integration


@pytest.fixture
def sftp_destination(csv_integration, running_sshd, operator):  # type: ignore[no-untyped-def]
    folder = running_sshd.folder(f"dest{csv_integration.pk}")
    return services.destination_create(
        integration=csv_integration, transport=Transport.SFTP, actor=operator,
        sftp_host="127.0.0.1", sftp_port=running_sshd.port, sftp_username=running_sshd.user,
        sftp_directory=str(folder), sftp_host_key=running_sshd.host_key_line,
        sftp_private_key=running_sshd.client_private,
    )


@pytest.fixture
def pull_destination(csv_integration, operator):  # type: ignore[no-untyped-def]
    return services.destination_create(
        integration=csv_integration, transport=Transport.HTTPS_PULL, actor=operator,
        link_ttl_hours=1, link_single_use=True,
    )
