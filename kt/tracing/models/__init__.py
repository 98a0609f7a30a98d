"""LightningModules that train the knowledge-tracing networks."""
