"""Push rules: the spec's server-default rules, each user's own rules, and their evaluation."""
