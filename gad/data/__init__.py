"""Data: files people have -> raw records (readers) -> prompt/teacher-response examples (examples), and the
prompt sets shipped with the package (resources, datasets/)."""
