"""Config file: pydantic model, problems reporting, sections, check-config and the demo config."""
