"""Inbound provider webhooks: verified Stripe invoice events become external status updates."""
