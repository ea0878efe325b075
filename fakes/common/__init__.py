"""Pieces every local fake shares: the command-line entry point (`serve`)."""
