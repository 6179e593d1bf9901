"""The web console on the health listener (issue 15): pages, their JSON, live updates."""
