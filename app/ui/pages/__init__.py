"""One module per dashboard page; each has `build(ui, ...)` that lays the page out and wires its events."""
