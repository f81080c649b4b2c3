"""Writes each message to a file instead of texting it: for development and audits, never a stand-in SMS."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from django.conf import settings

from notifier.providers.base import PermanentError, Provider, ProviderConfig, TransientError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class TextConfig(ProviderConfig):
    DestinationFolder: str = "sent_notification"


def destination(folder: str) -> Path:
    """A relative DestinationFolder lives under the service's var directory, like the SQLite file."""
    path = Path(folder)
    return path if path.is_absolute() else Path(settings.VAR_DIR) / path


def message_path(folder: str, reference: str) -> Path:
    name = _UNSAFE.sub("_", reference).strip("._")
    if not name:
        raise PermanentError(f"reference {reference!r} gives no usable file name")
    return destination(folder) / f"{name}.txt"


class TextNotificationProvider(Provider):
    slug = "TextNotificationProvider"
    label = "Text files (development, audit)"
    config_class = TextConfig
    delivers_sms = False

    def send(self, recipient: str, text: str, reference: str, *, metadata: Mapping[str, str] | None = None) -> str:
        config = self.config_as(TextConfig)
        metadata = metadata or {}
        target = message_path(config.DestinationFolder, reference)
        header = [
            f"reference: {reference}",
            f"recipient: {recipient}",
            f"language: {metadata.get('language', '')}",
            f"type: {metadata.get('notification_type', '')}",
        ]
        if metadata.get("delivered_by"):
            header.append(f"delivered by: {metadata['delivered_by']}")
        content = "\n".join(header) + f"\n\n{text}\n"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Same directory as the target so the rename is atomic; a retry replaces the file, never adds one.
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".txt")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    stream.write(content)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TransientError(f"cannot write {target}: {exc.strerror}") from None
        return str(target)
