"""Background sweepers: expired job leases and due boundary timers."""
