"""Image backbones (feature extractors) the geolocation models are built on."""
