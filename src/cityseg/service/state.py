"""What the routes share with the app that builds them: the service state and the page's files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityseg.service.admission import Admission
from cityseg.service.samples import SampleStore
from cityseg.service.settings import Settings
from cityseg.service.worker import InferenceWorker, PredictorLike

STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class ServiceState:
    """What the routes share: settings, the model once loaded, the samples."""

    settings: Settings
    model_path: Path | None
    predictor: PredictorLike | None = None
    worker: InferenceWorker | None = None
    admission: Admission | None = None  # made on the event loop, with the worker
    samples: SampleStore = field(default_factory=SampleStore.empty)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ready(self) -> bool:
        """True once the model is loaded and the inference thread runs."""
        return self.worker is not None
