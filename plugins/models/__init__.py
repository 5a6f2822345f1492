"""Built-in model plugins, registered in setup.cfg under ``tfpipe.models``."""
