"""runlog: crash-safe experiment tracking."""
