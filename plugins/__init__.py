"""Plugin registry and the built-in plugins (models, device policies)."""
