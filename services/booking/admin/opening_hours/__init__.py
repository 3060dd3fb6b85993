"""Branch opening hours, closed days and the public-holiday import (admin)."""
