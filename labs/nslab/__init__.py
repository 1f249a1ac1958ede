"""The namespace lab: realises a containerlab topology file without Docker (see labs/lab)."""
