"""The control plane: HTTP API (configurations, credentials, external mappings, run
history, events, resend, OAuth connect) over the compacted topics and the run store."""
