"""Adapters: storage backends, provider clients and image storage for mjcore's ports."""
