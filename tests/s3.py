"""A local S3-compatible server for the media tests that run on S3 storage (docs/media.md).

It is moto's standalone server (``moto_server``, from requirements-dev.txt): an **emulator** of the S3 API
spoken over real HTTP, which boto3 and django-storages talk to exactly as to a real store. No real S3
server is installable here (Debian bookworm packages none that runs alone; MinIO, Garage and SeaweedFS are
not on PyPI, Debian or npm). One server per test session, on its own free port, started only when a test
asks for it and stopped (its own process group, nothing else) at the end; each test gets a fresh bucket
and ``STORAGES["default"]`` built by ``config.storage.media_storage`` from the same variables an operator sets.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import environ
import pytest

from config.storage import media_storage
from tests import procs

REGION = "us-east-1"


class S3Server:
    def __init__(self):
        self.port = procs.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        binary = Path(sys.executable).with_name("moto_server")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONUNBUFFERED": "1"}
        self.proc = procs.Proc("moto-s3", [str(binary), "-H", "127.0.0.1", "-p", str(self.port)], env)
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                                   aws_access_key_id="test-key", aws_secret_access_key="test-secret")
        procs.wait_for(self._up, 30, 0.1, f"moto_server on port {self.port}")

    def _up(self) -> bool:
        if not self.proc.alive():
            raise AssertionError(f"moto_server exited: {self.proc.output()[-2000:]}")
        try:
            self.client.list_buckets()
            return True
        except Exception:  # noqa: BLE001 (not listening yet)
            return False

    def env(self, bucket: str) -> dict:
        """The variables that select this bucket (what an operator puts in .env)."""
        return {"MEDIA_STORAGE": "s3", "MEDIA_S3_BUCKET": bucket, "MEDIA_S3_ENDPOINT_URL": self.endpoint,
                "MEDIA_S3_REGION": REGION, "MEDIA_S3_ACCESS_KEY_ID": "test-key",
                "MEDIA_S3_SECRET_ACCESS_KEY": "test-secret", "MEDIA_S3_ADDRESSING_STYLE": "path"}

    def stop(self):
        self.proc.stop()


class S3Bucket:
    """One test's bucket: its name, the variables naming it, and a direct look at what it holds."""

    def __init__(self, server: S3Server, name: str):
        self.server, self.name, self.client = server, name, server.client
        self.env = server.env(name)

    def keys(self, prefix: str = "") -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


def env_reader(variables: dict) -> environ.Env:
    reader = environ.Env()
    reader.ENVIRON = dict(variables)
    return reader


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_media(s3_server, settings):
    """Media on S3 for this test: a new private bucket, ``STORAGES["default"]`` switched to it."""
    bucket = S3Bucket(s3_server, f"media-{uuid.uuid4().hex[:12]}")
    s3_server.client.create_bucket(Bucket=bucket.name)
    settings.STORAGES = {**settings.STORAGES, "default": media_storage(env_reader(bucket.env))}
    return bucket
