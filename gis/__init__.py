"""pin311's spatial core: layers, geocoding, locate, routing, intake. Knows nothing of Flask."""
