"""The router: bills in, one dispatch envelope per matching configuration out."""
