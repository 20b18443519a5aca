"""jumpgate: one OpenAI-compatible gateway in front of many Amazon SageMaker LLM endpoints."""

__version__ = "0.1.0"
__all__ = ["__version__"]
