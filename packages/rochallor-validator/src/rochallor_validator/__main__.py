"""``python -m rochallor_validator FILE...``"""

from __future__ import annotations

import sys

from rochallor_validator.cli import main

sys.exit(main())
