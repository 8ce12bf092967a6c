"""Where media files live: ``MEDIA_STORAGE`` picks Django's default storage (docs/media.md).

``filesystem`` (the default): ``FileSystemStorage`` under ``MEDIA_ROOT``. ``s3``: django-storages'
``S3Storage`` on any S3-compatible store (AWS S3, MinIO, Ceph RGW, Garage, R2...), named by the
``MEDIA_S3_*`` variables. Either way nothing is public: every file is read back through the
access-checked view, which streams it from the storage (no presigned URLs are handed out).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

FILESYSTEM = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
S3_BACKEND = "storages.backends.s3.S3Storage"


def media_storage(env) -> dict:
    """The ``STORAGES["default"]`` entry the environment asks for; a clear error for a wrong one."""
    kind = (env("MEDIA_STORAGE", default="filesystem") or "filesystem").strip().lower()
    if kind == "filesystem":
        return dict(FILESYSTEM)
    if kind != "s3":
        raise ImproperlyConfigured(f"MEDIA_STORAGE={kind!r}: use 'filesystem' (the default) or 's3'")
    bucket = env("MEDIA_S3_BUCKET", default="")
    if not bucket:
        raise ImproperlyConfigured("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET (the bucket must exist and not be public)")
    options = {
        "bucket_name": bucket,
        # The files are private: no ACL is sent (objects get the bucket's, which must not be public; a bucket
        # with ACLs disabled refuses any other), and nothing builds a URL to them (the view streams them).
        "default_acl": None,
        "querystring_auth": True,
        # Names are content-addressed (the sha256 of the bytes): saving under a taken name writes the same
        # bytes, so the name is kept instead of getting a random suffix.
        "file_overwrite": True,
        "signature_version": "s3v4",
        # A file read whole through the storage API (an image for its thumbnail) spills to a temporary
        # file past this size instead of staying in memory.
        "max_memory_size": env.int("MEDIA_S3_MAX_MEMORY_BYTES", default=8 * 1024 * 1024),
        "location": env("MEDIA_S3_PREFIX", default="").strip("/"),
    }
    optional = {"endpoint_url": "MEDIA_S3_ENDPOINT_URL", "region_name": "MEDIA_S3_REGION",
                "access_key": "MEDIA_S3_ACCESS_KEY_ID", "secret_key": "MEDIA_S3_SECRET_ACCESS_KEY",
                "addressing_style": "MEDIA_S3_ADDRESSING_STYLE"}
    for option, variable in optional.items():
        # Unset keys: boto3's own chain (AWS_* variables, an instance or pod role).
        if value := env(variable, default=""):
            options[option] = value
    return {"BACKEND": S3_BACKEND, "OPTIONS": options}


def is_s3(storage) -> bool:
    """Whether ``storage`` is django-storages' S3 backend (ranged reads go to the S3 API directly)."""
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # pragma: no cover - django-storages is a runtime requirement
        return False
    return isinstance(storage, S3Storage)
