"""How messages and prompts become text for text-in schemas: chat and instruction templates."""
