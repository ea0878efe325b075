"""`billsync replay`: re-publish a range of bills on the replay topic (live consumer groups
are never moved), or show what a replay would do with --dry-run."""
