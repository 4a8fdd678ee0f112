"""For development and trials only: the demo, the loopback stack, the synthetic population."""
