"""The web console of issue 15 (docs/CONSOLE.md): pages and APIs on the health listener."""
