"""Small things: the paper's toy experiment (experiment) and tiny random models for tests and demos (tiny)."""
