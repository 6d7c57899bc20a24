"""Pure Adaptive Card 1.5 builders (domain object in, card JSON out) and typed parsing of what comes back."""
