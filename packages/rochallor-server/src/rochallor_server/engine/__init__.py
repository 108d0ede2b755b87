"""The pure engine core: state, events and the commands that persist them. No I/O here."""
