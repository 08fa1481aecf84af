"""Small helpers every stage may import (no framework, no project imports)."""
