"""Files people send the bot in personal chat.

Teams does not put the file in the message: it stores it in the sender's OneDrive and sends an
attachment of content type ``application/vnd.microsoft.teams.file.download.info`` whose content
holds a short-lived, pre-authorised ``downloadUrl`` (and ``fileType``, ``uniqueId``); the attachment's
``name`` is the file name. The manifest must say ``"supportsFiles": true`` for the bot. Files are
fetched with aiohttp (never blocking the event loop), with a size limit and a timeout.

``FILES_RECEIVED`` is the router event that bot/handler.py raises for a message that carries files
and no text; the feature that expects a file registers it with ``router.event(FILES_RECEIVED, ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"
FILES_RECEIVED = "files.received"
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 30


class FileTooLarge(ValueError):
    pass


class FileUnavailable(ValueError):
    """The download failed (expired link, network, HTTP error)."""


@dataclass(frozen=True)
class IncomingFile:
    name: str
    file_type: str
    download_url: str
    unique_id: str = ""


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value:
            return value
    return None


def incoming_files(activity: Any) -> list[IncomingFile]:
    """The Teams file attachments of an activity (other attachments, such as cards, are ignored)."""
    found = []
    for attachment in getattr(activity, "attachments", None) or []:
        if _get(attachment, "content_type", "contentType") != FILE_DOWNLOAD_INFO:
            continue
        content = _get(attachment, "content") or {}
        url = _get(content, "downloadUrl", "download_url")
        if not url:
            continue
        name = str(_get(attachment, "name") or "")
        file_type = str(_get(content, "fileType", "file_type") or (name.rsplit(".", 1)[-1] if "." in name else ""))
        found.append(IncomingFile(name=name, file_type=file_type.lower(), download_url=str(url),
                                  unique_id=str(_get(content, "uniqueId", "unique_id") or "")))
    return found


def has_files(activity: Any) -> bool:
    return bool(incoming_files(activity))


async def fetch(file: IncomingFile, *, max_bytes: int = DEFAULT_MAX_BYTES,
                timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                session: aiohttp.ClientSession | None = None) -> bytes:
    """The file's bytes, read in chunks; stops (FileTooLarge) as soon as it passes ``max_bytes``."""
    owned = session is None
    client = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds))
    try:
        async with client.get(file.download_url, allow_redirects=True) as response:
            if response.status != 200:
                raise FileUnavailable(f"HTTP {response.status}")
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise FileTooLarge(str(declared))
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise FileTooLarge(str(size))
                chunks.append(chunk)
            return b"".join(chunks)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise FileUnavailable(type(error).__name__) from None
    finally:
        if owned:
            await client.close()
