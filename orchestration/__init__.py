"""Above the stages: the one layer that knows every stage, runs them in order and checks a config with all of their
checks (docs/architecture.md)."""
