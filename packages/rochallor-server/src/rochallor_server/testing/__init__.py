"""Test helpers shipped with the server: throwaway PostgreSQL clusters and databases."""

from __future__ import annotations

from rochallor_server.testing._postgres import TestCluster

__all__ = ["TestCluster"]
