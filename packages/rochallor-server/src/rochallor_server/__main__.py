from __future__ import annotations

from rochallor_server.cli import main

main()
