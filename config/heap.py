"""The startup heap of a worker process, kept out of the cyclic garbage collector's way.

A worker imports Django, the apps and neonize's protobuf modules once; those ~150,000 objects live as
long as the process, yet every full collection traverses them again (0.5-1 s each on the shared 2-core
machine: the generated protobuf classes are slow to traverse; docs/measurements.md). A history batch
leaves tens of thousands of surviving objects (the next batch, decoded ahead), which is what makes
the collector start full collections. ``gc.freeze()`` moves everything alive at startup to the
permanent generation: collections no longer look at it (nor write to its pages, which a prefork child
shares with its parent), and what the process allocates later is collected as before.
"""

import gc


def freeze_startup_heap() -> None:
    """Call once, when the process has imported what it runs: Celery's ``worker_process_init``, a runner
    session host before it takes sessions (``connections.child.run_child``), the socket server once its
    ASGI application is built (``config/asgi.py``). In a live flood (bench/flood.py, 2,000 msg/s) each
    session host ran a full collection of 113-156 ms, during which its 25 numbers' events waited; the
    socket server's took 77-105 ms (docs/measurements.md)."""
    gc.freeze()
