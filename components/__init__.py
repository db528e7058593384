"""Thin Pulumi ComponentResources. Domain decisions live in the pure `hamieks` package."""
