"""What must hold for every Function: the checks, and the property tests that run them."""
