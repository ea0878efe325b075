"""The Stripe sink: dispatch.stripe envelopes -> Stripe invoices (live and test mode)."""
