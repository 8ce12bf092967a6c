"""Data in and out: tenant exports and imports (``export``, ``load``, the ``archive`` format), scheduled
backups (``backups``). See docs/backups.md."""
