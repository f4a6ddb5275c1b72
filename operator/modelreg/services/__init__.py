"""Use cases: sequence storage calls around domain decisions. No kopf here."""
