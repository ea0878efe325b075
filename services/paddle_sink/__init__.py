"""The Paddle sink: dispatch.paddle envelopes -> Paddle Billing transactions (live and
sandbox)."""
