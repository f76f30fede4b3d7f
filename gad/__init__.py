"""GAD: black-box on-policy distillation of LLMs with Generative Adversarial Distillation.

`__version__` is the project's one version: pyproject.toml reads it at build time (dynamic version)
and the studio reports it (/health, the API docs).
"""

__version__ = "0.2.0"
