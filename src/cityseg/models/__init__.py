"""Model zoo: see `cityseg.models.registry`."""
