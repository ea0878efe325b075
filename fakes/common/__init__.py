"""Pieces the local fakes share: serving an app and the command-line entry point
(`serve`), and the ``/_fake/config`` patch of the Stripe and Paddle fakes (`config`)."""
