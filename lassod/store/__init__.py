"""Store: the SQLite database, its schema and every query lassod runs.

This package is the only place that imports aiosqlite or sqlite3.
"""

from sqlite3 import Error as DatabaseError

from lassod.store.database import Database, StoreError

__all__ = ["Database", "DatabaseError", "StoreError"]
