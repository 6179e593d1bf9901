__version__ = "0.1.0"

# edge_agent.config extends its device union with edge_agent.config_opcua, which builds
# on config's base types; loading config first makes every import order work.
import edge_agent.config  # noqa: F401
