"""``python -m rochallor_sdk.cli`` runs the ``rochallor`` command."""

from __future__ import annotations

from rochallor_sdk.cli import main

main()
