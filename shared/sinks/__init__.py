"""The sink framework: one contract (destination.py) for every destination; the runner
owns consumption, de-duplication, the invoice map, retries, rate limits and run records."""
