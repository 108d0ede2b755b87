from __future__ import annotations

import sys

from rochallor_conformance.cli import main

sys.exit(main())
