"""GAD Studio: the web studio, its data and its jobs, around the `gad` library."""
