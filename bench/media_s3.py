"""Media on S3: what a seek in a video costs the web process, read the storage API's way or ours.

    .venv/bin/python bench/media_s3.py [--mb 32] [--reads 15]

Starts moto's S3 server (an emulator, from requirements-dev.txt; the only local S3 server installable here)
on a free port, stores one ``--mb`` MiB object through the app's S3 storage (``MEDIA_STORAGE=s3``), then
reads ``--reads`` 64 KiB ranges at random offsets, as a video player seeking does, two ways:

* ``storage_open``: ``storages["default"].open(name)`` + ``seek`` + ``read``, what the view did before: the
  S3 backend downloads the whole object before the first read;
* ``open_stored``: ``inbox.media.open_stored(name, first, last)``, what the view does now: one ranged GetObject.

For each: wall time and this process's CPU time per read (p50), and the bytes the server sent per read
(from the responses' Content-Length). Also the time to the first 64 KiB of the whole file (a player's first
request). No database. Prints one JSON line and saves bench/results/media_s3.json. Wall times are noisy on
a shared machine (the emulator runs beside us); the CPU times and the bytes are the figures to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchlib import pct, port_open, wait_for  # noqa: E402

CHUNK = 64 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(read, offsets, counter) -> dict:
    walls, cpus, sent = [], [], []
    for offset in offsets:
        counter["bytes"] = 0
        w, c = time.perf_counter(), time.process_time()
        data = read(offset)
        walls.append((time.perf_counter() - w) * 1000)
        cpus.append((time.process_time() - c) * 1000)
        sent.append(counter["bytes"])
        assert len(data) == CHUNK
    return {"wall_ms_p50": pct(walls, 0.5), "cpu_ms_p50": pct(cpus, 0.5),
            "server_bytes_per_read": int(pct(sent, 0.5))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=32)
    parser.add_argument("--reads", type=int, default=15)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: port_open(port), 30, "moto_server", ())
        os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings.test", "MEDIA_STORAGE": "s3",
                           "MEDIA_S3_BUCKET": "bench-media", "MEDIA_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                           "MEDIA_S3_REGION": "us-east-1", "MEDIA_S3_ACCESS_KEY_ID": "k",
                           "MEDIA_S3_SECRET_ACCESS_KEY": "s", "MEDIA_S3_ADDRESSING_STYLE": "path"})
        import django

        django.setup()
        from django.core.files.base import ContentFile

        from inbox import media

        store = media.storage()
        store.connection.meta.client.create_bucket(Bucket="bench-media")
        counter = {"bytes": 0}

        def count(http_response, **kwargs):
            counter["bytes"] += int(http_response.headers.get("Content-Length") or 0)

        store.connection.meta.client.meta.events.register("after-call.s3.GetObject", count)
        data = random.Random(1).randbytes(args.mb * 1024 * 1024)
        name = store.save("media/1/ab/bench-video", ContentFile(data))
        rng = random.Random(2)
        offsets = [rng.randrange(0, len(data) - CHUNK) for _ in range(args.reads)]

        def storage_open(offset):
            with store.open(name, "rb") as f:
                f.seek(offset)
                return f.read(CHUNK)

        def open_stored(offset):
            with media.open_stored(name, offset, offset + CHUNK - 1) as f:
                return f.read(CHUNK)

        def first_chunk(opener):
            w = time.perf_counter()
            with opener() as f:
                f.read(CHUNK)
            return round((time.perf_counter() - w) * 1000, 2)

        result = {
            "bench": "media_s3", "server": "moto_server (S3 emulator)", "object_mib": args.mb, "reads": args.reads,
            "range_64k": {"storage_open": measure(storage_open, offsets, counter),
                          "open_stored": measure(open_stored, offsets, counter)},
            "first_64k_of_whole_file_ms": {"storage_open": first_chunk(lambda: store.open(name, "rb")),
                                           "open_stored": first_chunk(lambda: media.open_stored(name))},
            "python": platform.python_version(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load": os.getloadavg()[0],
        }
    finally:
        server.terminate()
        server.wait(10)
    line = json.dumps(result)
    print(line)
    (ROOT / "bench" / "results" / "media_s3.json").write_text(line + "\n")


if __name__ == "__main__":
    main()
