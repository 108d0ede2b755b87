"""The PostgreSQL store, by file:

- :mod:`.store`: :class:`PostgresStore` (``service.ports.Store``): the pool's sessions and
  transactions, database errors as storage errors, advisory locks, the health ping.
- :mod:`.session`: :class:`PostgresSession` (``service.ports.Session``): each port method is
  one named statement of ``queries.sql``; its rows become models in :mod:`.rows`.
- :mod:`.apply`: the event write: commands → one JSON document (each kind of row declared
  once, in ``apply.sql``) → one statement of whole fragments of ``apply.sql``.
- :mod:`.notifications`: the ``LISTEN`` connection that wakes long polls.
- :mod:`.statements`: the loader of the ``.sql`` files; :mod:`.pool`, :mod:`.migrate`,
  :mod:`.outbox` (``kafka_outbox`` relay), :mod:`.api_keys`, :mod:`.embedded`.
"""

from __future__ import annotations

from rochallor_server.store.postgres.apply import apply_statement, command_document
from rochallor_server.store.postgres.notifications import JOBS_CHANNEL
from rochallor_server.store.postgres.pool import create_pool
from rochallor_server.store.postgres.session import PostgresSession, like_pattern
from rochallor_server.store.postgres.store import PostgresStore

__all__ = [
    "JOBS_CHANNEL",
    "PostgresSession",
    "PostgresStore",
    "apply_statement",
    "command_document",
    "create_pool",
    "like_pattern",
]
