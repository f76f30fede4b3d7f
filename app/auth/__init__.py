"""Who is asking, and what they may do: passwords, session cookies, API tokens, the role policy."""
