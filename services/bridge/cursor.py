"""The pg-bridge's position, kept in NATS (KV bucket `mail_bridge_cursor`), so the
bridge needs nothing but LISTEN and SELECT on the application's database.

It is stored only after every command of a batch is acked by JetStream, and it only
moves forward: when two bridges read the same source, the one behind does not pull
the cursor back (it would only cost re-published rows, which are the same messages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.bridge.logic import START, Position

CURSOR_BUCKET = "mail_bridge_cursor"


@dataclass
class CursorStore:
    kv: KeyValue
    key: str
    source: str
    revision: int | None = None

    async def load(self) -> Position:
        try:
            entry = await self.kv.get(self.key)
        except KeyNotFoundError:
            self.revision = None
            return START
        self.revision = entry.revision
        data = json.loads(entry.value or b"{}")
        return Position(int(data["txid"]), int(data["id"]))

    async def save(self, position: Position) -> None:
        value = json.dumps(
            {"txid": position.txid, "id": position.id, "source": self.source}
        ).encode()
        while True:
            try:
                if self.revision is None:
                    self.revision = await self.kv.create(self.key, value)
                else:
                    self.revision = await self.kv.update(self.key, value, last=self.revision)
                return
            except KeyWrongLastSequenceError:
                if await self.load() >= position:
                    return
