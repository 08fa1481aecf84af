"""The FastAPI segmentation service."""
