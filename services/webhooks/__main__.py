"""`python -m services.webhooks`."""

from services.webhooks.main import main

main()
