"""The embedded Celery broker: kombu's filesystem transport with atomic writes and claims.

Registered as the URL scheme ``atomicfs://`` (the default CELERY_BROKER_URL), so
`make run` needs no Redis. Why not plain ``filesystem://``:

- kombu's producer opens ``<name>.msg`` and then writes into it, so a consumer
  listing the folder in between moves away an empty or half-written file and
  dies on a JSONDecodeError (celery/kombu#1551, seen here about once in 3,000
  messages). Here a message is written under a temporary name that no consumer
  looks at, flushed, and only then renamed to its ``.msg`` name: rename within
  one folder is atomic, so a consumer sees a whole message or none.
- kombu's consumer claims a file with shutil.move into the system temp folder,
  which is a copy and a delete when /tmp is another filesystem, so two
  consumers can both copy one message. Here the claim is an os.rename into
  ``processed_folder`` beside the queue (same filesystem): exactly one
  consumer wins, the others get FileNotFoundError and try the next file.
- The folders are created on first use, so a fresh checkout just works.

The broker is for one machine (the development server, a small install); with
CELERY_BROKER_URL set to Redis or RabbitMQ none of this is used.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

SCHEME = "atomicfs"
# Consumers pick files by `name.partition('.')[2] == '<queue>.msg'`; a name
# starting with this prefix has no such suffix, so it is never picked up.
TEMP_PREFIX = ".incoming-"


class Channel(filesystem.Channel):
    """Filesystem channel whose messages appear whole (write a temporary file, then rename)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for folder in (self.data_folder_in, self.data_folder_out, self.processed_folder, self.control_folder):
            Path(folder).mkdir(parents=True, exist_ok=True)

    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: visible to consumers only once completely written."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temp = os.path.join(self.data_folder_out, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(temp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.rename(temp, final)
        except OSError as exc:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue):
        """Take the oldest message of `queue`; concurrent consumers never get the same one."""
        suffix = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != suffix:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                # The claim: atomic on one filesystem; the loser gets FileNotFoundError.
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
                if not self.store_processed:
                    os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
    # Its own state object: bindings of this transport are not mixed with filesystem://.
    global_state = filesystem.virtual.BrokerState()
    driver_type = SCHEME
    driver_name = SCHEME


def register() -> None:
    """Make ``atomicfs://`` resolvable by kombu in this process (idempotent)."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")


register()
