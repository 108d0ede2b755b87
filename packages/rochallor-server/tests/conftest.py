from __future__ import annotations

import os

# Tests configure the server explicitly; never inherit a developer's engine settings.
for _name in list(os.environ):
    if _name.startswith(("WE_", "ROCHALLOR_")) or _name in {"DB_MAX_CONNS", "DB_MIN_CONNS"}:
        del os.environ[_name]
