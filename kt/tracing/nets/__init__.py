"""Plain ``nn.Module`` knowledge-tracing networks, free of training logic."""
