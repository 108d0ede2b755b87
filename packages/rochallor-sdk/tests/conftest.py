from __future__ import annotations

import os

# Tests must not pick up a developer's worker configuration.
for _name in [n for n in os.environ if n.startswith("ROCHALLOR_")]:
    del os.environ[_name]
