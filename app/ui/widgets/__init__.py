"""Pieces several pages share: HTML snippets (badges, cards, tables), Plotly charts, the run-settings form."""
