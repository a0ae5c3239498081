"""Sending a sealed file as an HTTP response, one decrypted chunk at a time.

A pull producer: the transport asks for the next chunk only once it has sent the previous one, so
however large the file, at most a chunk or two of plaintext is in memory. A byte range starts at
the chunk holding its first byte (see SealedReader) and ends with the chunk holding its last.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from homeserver.media.sealed_files import SealedReader

logger = logging.getLogger(__name__)


@implementer(IPullProducer)
class SealedFileProducer:
    """Sends the reader's plaintext; for a byte range, drops `skip` bytes first and stops after `length`."""

    def __init__(self, request: Any, reader: SealedReader, *, skip: int = 0, length: int | None = None) -> None:
        self._request = request
        self._reader = reader
        self._skip = skip
        self._remaining = length
        self.finished: defer.Deferred[None] = defer.Deferred()

    def start(self) -> "defer.Deferred[None]":
        self._request.registerProducer(self, False)
        return self.finished

    def resumeProducing(self) -> None:
        if self.finished.called:
            return
        try:
            chunk = self._reader.read_chunk()
        except Exception:
            # Headers promised the whole file: cut the connection so the client sees it incomplete.
            logger.error("Failed to read a media file while sending it", exc_info=True)
            self._end(abort=True)
            return
        if self._skip:
            chunk, self._skip = chunk[self._skip:], max(0, self._skip - len(chunk))
        if self._remaining is not None:
            chunk = chunk[: self._remaining]
            self._remaining -= len(chunk)
        if chunk:
            self._request.write(chunk)
        if self._remaining == 0:
            self._end(abort=False)
        elif self._reader.done:
            # A range past what the file holds: the headers promised more, so cut the connection.
            self._end(abort=self._remaining is not None)

    def stopProducing(self) -> None:
        # The transport is closing (client gone, or server shutting down): nothing more to send.
        self._end(abort=False)

    def _end(self, *, abort: bool) -> None:
        """Release the request and the file; the response is complete (or cut) before `finished` fires."""
        request = self._request
        if request.channel is not None and not request.finished:
            request.unregisterProducer()
            if abort:
                request.channel.transport.abortConnection()
            request.finish()
        self._reader.close()
        if not self.finished.called:
            self.finished.callback(None)
