"""Use cases: each API call or background event is one transaction (load, decide, persist)."""
