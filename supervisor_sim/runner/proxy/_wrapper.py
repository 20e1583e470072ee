"""The executable that puts the proxy in front of a runtime, for Airflow's coordinators.

Airflow's coordinators take an executable, not a command line: the Java coordinator's
``java_executable`` is one path, and the executable coordinator runs the bundle it finds under
``executables_root`` as it is. So the proxy is installed as a small ``sh`` script that execs
``supervisor-sim proxy [OPTIONS] -- RUNTIME "$@"`` (Airflow's ``--comm/--logs`` arrive in
``"$@"``). When the runtime is an executable bundle, the script is itself made a bundle: the
script, then the original's source and metadata regions (so it declares the same DAGs and
supervisor schema version), then the 64-byte trailer Airflow checks (``AFBNDL01``, the script's
SHA-256). ``sh`` stops reading at ``exec``; the bytes after the script are never run.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["BundleRegions", "bundle_metadata", "bundle_regions", "write_wrapper"]

_MAGIC = b"AFBNDL01"
_FOOTER = 64
_FOOTER_VERSION = 1


class BundleRegions(NamedTuple):
    """The regions of an executable bundle (Airflow's executable coordinator's layout)."""

    executable: bytes
    source: bytes
    metadata: bytes


def bundle_regions(path: str | os.PathLike[str]) -> BundleRegions | None:
    """The regions of the executable bundle at ``path``, or None when it is not one (no
    trailer, or one whose lengths or digest do not hold)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if len(data) < _FOOTER or data[-8:] != _MAGIC:
        return None
    trailer = data[-_FOOTER:]
    source_len, metadata_len, version = struct.unpack_from("<III", trailer, 0)
    metadata_start = len(data) - _FOOTER - metadata_len
    source_start = metadata_start - source_len
    if version != _FOOTER_VERSION or source_start <= 0:
        return None
    executable = data[:source_start]
    if hashlib.sha256(executable).digest() != trailer[12:44]:
        return None
    return BundleRegions(
        executable, data[source_start:metadata_start], data[metadata_start : len(data) - _FOOTER]
    )


def bundle_metadata(path: str | os.PathLike[str]) -> str | None:
    """The metadata YAML of the executable bundle at ``path`` (None: not a bundle)."""
    regions = bundle_regions(path)
    return None if regions is None else regions.metadata.decode("utf-8", "replace")


def _bundle(executable: bytes, source: bytes, metadata: bytes) -> bytes:
    footer = struct.pack("<III", len(source), len(metadata), _FOOTER_VERSION)
    footer += hashlib.sha256(executable).digest() + b"\0" * 12 + _MAGIC
    assert len(footer) == _FOOTER
    return executable + source + metadata + footer


def write_wrapper(
    path: str | os.PathLike[str],
    options: Sequence[str],
    runtime: Sequence[str],
    *,
    python: str | None = None,
) -> bool:
    """Write an executable at ``path`` running ``python -m supervisor_sim proxy OPTIONS --
    RUNTIME "$@"``; a bundle when ``runtime[0]`` is one. Returns whether it wrote a bundle.
    ``OSError`` when ``path`` cannot be written."""
    argv = [python or sys.executable, "-m", "supervisor_sim", "proxy", *options, "--", *runtime]
    script = f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\nexit 127\n'.encode()
    regions = bundle_regions(runtime[0]) if runtime else None
    data = script if regions is None else _bundle(script, regions.source, regions.metadata)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        # Whole or not at all: a coordinator scanning the folder never sees half a bundle.
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return regions is not None
