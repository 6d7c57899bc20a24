"""Azurite (the Azure Storage emulator from npm) on a free loopback port, once per test session.

``azurite`` is a session fixture (registered in tests/conftest.py): it starts
``node_modules/.bin/azurite-blob`` in memory, waits until it answers, yields an ``Azurite`` with the
connection string, and stops the process by its PID at the end.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# The public, documented development-storage key that every Azurite install uses.
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    port: int
    pid: int

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    @staticmethod
    def container_name(prefix: str = "test") -> str:
        """A fresh container per test, so tests never see each other's blobs."""
        return f"{prefix}-{secrets.token_hex(6)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_azurite(timeout: float = 30.0) -> tuple[Azurite, subprocess.Popen[bytes]]:
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run `npm ci` (make e2e-deps)")
    port = free_port()
    process = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if process.poll() is not None:
            raise RuntimeError(f"azurite exited: {process.stderr.read().decode()[-500:] if process.stderr else ''}")
        if time.monotonic() > deadline:
            stop_azurite(process)
            raise RuntimeError("azurite did not start in time")
        time.sleep(0.1)
    return Azurite(port=port, pid=process.pid), process


def stop_azurite(process: subprocess.Popen[bytes]) -> None:
    """Stop our Azurite by its PID (its own process group: node may have children)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server, process = start_azurite()
    try:
        yield server
    finally:
        stop_azurite(process)
